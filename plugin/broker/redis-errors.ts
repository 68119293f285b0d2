import { BrokerUnavailableError } from './broker.js'

/** Any failure of a Redis command, as callers see it: the broker is unavailable. */
export function unavailable (err: unknown): BrokerUnavailableError {
  if (err instanceof BrokerUnavailableError) return err
  return new BrokerUnavailableError(`redis: ${(err as Error).message}`, { cause: err })
}
