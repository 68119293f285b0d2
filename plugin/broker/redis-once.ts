import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { OnceClaim } from './broker.js'
import { runScript } from './redis-errors.js'

/*
 * Requests that run once, across the fleet: one key per request, `r:<token>` while a run holds
 * it (expiring with its lease) and `d:<answer>` once answered (expiring after the answer's TTL).
 * Each script runs atomically: of two nodes claiming at once, one gets it, as with SET NX.
 */
const CLAIM = `
local value = redis.call('GET', KEYS[1])
if value then
  if string.sub(value, 1, 2) == 'd:' then return {'done', string.sub(value, 3)} end
  return {'running'}
end
redis.call('SET', KEYS[1], 'r:' .. ARGV[1], 'PX', ARGV[2])
return {'claimed'}
`
const RENEW = `
if redis.call('GET', KEYS[1]) ~= 'r:' .. ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`
const FINISH = `
if redis.call('GET', KEYS[1]) ~= 'r:' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'd:' .. ARGV[2], 'PX', ARGV[3])
return 1
`
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= 'r:' .. ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`

type OnceCommand = 'frtOnceClaim' | 'frtOnceRenew' | 'frtOnceFinish' | 'frtOnceRelease'

export class RedisOnce {
  readonly #commands: Redis
  readonly #prefix: string

  constructor (commands: Redis, prefix: string) {
    this.#commands = commands
    this.#prefix = prefix
    commands.defineCommand('frtOnceClaim', { numberOfKeys: 1, lua: CLAIM })
    commands.defineCommand('frtOnceRenew', { numberOfKeys: 1, lua: RENEW })
    commands.defineCommand('frtOnceFinish', { numberOfKeys: 1, lua: FINISH })
    commands.defineCommand('frtOnceRelease', { numberOfKeys: 1, lua: RELEASE })
  }

  async claim (key: string, leaseMs: number): Promise<OnceClaim> {
    const token = randomBytes(9).toString('base64url')
    const [state, answer] = await this.#run<[string, string?]>('frtOnceClaim', key, [token, leaseMs])
    if (state === 'done') return { state: 'done', answer: answer ?? '' }
    if (state === 'running') return { state: 'running' }
    return { state: 'claimed', token }
  }

  async renew (key: string, token: string, leaseMs: number): Promise<boolean> {
    return await this.#run<number>('frtOnceRenew', key, [token, leaseMs]) === 1
  }

  async finish (key: string, token: string, answer: string, ttlMs: number): Promise<void> {
    await this.#run('frtOnceFinish', key, [token, answer, ttlMs])
  }

  async release (key: string, token: string): Promise<void> {
    await this.#run('frtOnceRelease', key, [token])
  }

  async #run<T> (command: OnceCommand, key: string, args: Array<string | number>): Promise<T> {
    return await runScript<T>(this.#commands, command, [`${this.#prefix}once:${key}`, ...args])
  }
}
