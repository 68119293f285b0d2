import type { FastifyRequest } from 'fastify'
import { TokenBucket } from './budget.js'
import type { Identity } from '../types.js'

/** One client's budget, shared by its open connections on this node. */
export interface ClientBudget {
  readonly key: string
  readonly bucket: TokenBucket
  connections: number
}

/**
 * Message budgets per client rather than per connection: a client that opens forty connections
 * would otherwise send forty times the per-connection rate. An authenticated client is its
 * identity; an anonymous one its address (only when `addressMessagesPerSecond` is set, since
 * behind NAT or a proxy many people share one). A budget lives while a connection holds it.
 */
export class ClientBudgets {
  readonly #identityRate: number
  readonly #addressRate: number
  readonly #budgets = new Map<string, ClientBudget>()

  constructor (identityMessagesPerSecond: number, addressMessagesPerSecond: number) {
    this.#identityRate = identityMessagesPerSecond
    this.#addressRate = addressMessagesPerSecond
  }

  /** The budget a new connection shares, or undefined when its kind of client has none. */
  acquire (request: FastifyRequest, identity: Identity | undefined): ClientBudget | undefined {
    const [key, rate] = identity !== undefined ? [`identity:${identity.id}`, this.#identityRate] : [`address:${request.ip}`, this.#addressRate]
    if (rate <= 0) return undefined
    let budget = this.#budgets.get(key)
    if (budget === undefined) {
      budget = { key, bucket: new TokenBucket(rate), connections: 0 }
      this.#budgets.set(key, budget)
    }
    budget.connections++
    return budget
  }

  /** Called when a connection that acquired `budget` closes. */
  release (budget: ClientBudget): void {
    if (--budget.connections === 0) this.#budgets.delete(budget.key)
  }

  /** Clients with a budget now, for tests and introspection. */
  get size (): number {
    return this.#budgets.size
  }
}
