import type { Redis } from 'ioredis'
import { BrokerUnavailableError } from './broker.js'

/** Any failure of a Redis command, as callers see it: the broker is unavailable. */
export function unavailable (err: unknown): BrokerUnavailableError {
  if (err instanceof BrokerUnavailableError) return err
  return new BrokerUnavailableError(`redis: ${(err as Error).message}`, { cause: err })
}

type Script<T> = (...argv: Array<string | number>) => Promise<T>

/** Runs a script registered with `defineCommand`; any failure is `BrokerUnavailableError`. */
export async function runScript<T> (client: Redis, name: string, argv: Array<string | number>): Promise<T> {
  const script = (client as unknown as Record<string, Script<T>>)[name] as Script<T>
  try {
    return await script.call(client, ...argv)
  } catch (err) {
    throw unavailable(err)
  }
}
