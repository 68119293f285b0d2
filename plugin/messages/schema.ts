import fastJsonStringify from 'fast-json-stringify'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'

/** One entry of `VALIDATION_FAILED` details: where and why, never the offending value. */
export interface ValidationDetail {
  path: string
  message: string
}

/** A schema compiled once, when its route is declared. */
export interface CompiledSchema {
  check: (value: unknown) => boolean
  /** The first few reasons `value` fails, bounded in count and length. */
  explain: (value: unknown) => ValidationDetail[]
}

/** A serializer that writes only the fields the schema declares. */
export type Serializer = (value: unknown) => string

const MAX_DETAILS = 10
const MAX_PATH_LENGTH = 128

/**
 * Compiles a message schema for validation. Integers the schema leaves unbounded are bounded to
 * the safe range: a value such as 1e300 passes a plain integer check, yet no handler can use it.
 */
export function compileValidator (schema: TSchema): CompiledSchema {
  const validator = Compile(boundUnsafeIntegers(schema))
  return {
    check: (value) => validator.Check(value),
    explain (value) {
      const details: ValidationDetail[] = []
      for (const error of validator.Errors(value)) {
        // Each undeclared key yields "schema is false" at a path the client chose; the parent's
        // "must not have additional properties" already says it without repeating the key.
        if (error.keyword === 'boolean') continue
        // Keys chosen by the client appear in paths; cap them so details stay small.
        const path = error.instancePath.length > MAX_PATH_LENGTH
          ? error.instancePath.slice(0, MAX_PATH_LENGTH) + '…'
          : error.instancePath
        details.push({ path: path === '' ? '/' : path, message: error.message })
        if (details.length === MAX_DETAILS) break
      }
      return details
    }
  }
}

/** Compiles an outgoing schema with fast-json-stringify, which drops undeclared properties. */
export function compileSerializer (schema: TSchema): Serializer {
  return fastJsonStringify(schema as Parameters<typeof fastJsonStringify>[0]) as Serializer
}

function boundUnsafeIntegers (schema: TSchema): TSchema {
  return copyWithBounds(schema, new WeakMap()) as TSchema
}

function copyWithBounds (node: unknown, seen: WeakMap<object, unknown>): unknown {
  if (node === null || typeof node !== 'object') return node
  const existing = seen.get(node)
  if (existing !== undefined) return existing
  if (Array.isArray(node)) {
    const copy: unknown[] = []
    seen.set(node, copy)
    for (const item of node) copy.push(copyWithBounds(item, seen))
    return copy
  }
  // TypeBox keeps refinements and kinds in non-enumerable keys: copy every key as it was.
  const copy: Record<PropertyKey, unknown> = {}
  seen.set(node, copy)
  for (const key of Reflect.ownKeys(node)) {
    const descriptor = Object.getOwnPropertyDescriptor(node, key) as PropertyDescriptor
    if ('value' in descriptor) descriptor.value = copyWithBounds(descriptor.value, seen)
    Object.defineProperty(copy, key, descriptor)
  }
  const type = copy.type
  if (type === 'integer' || (Array.isArray(type) && type.includes('integer'))) {
    if (copy.minimum === undefined && copy.exclusiveMinimum === undefined) copy.minimum = Number.MIN_SAFE_INTEGER
    if (copy.maximum === undefined && copy.exclusiveMaximum === undefined) copy.maximum = Number.MAX_SAFE_INTEGER
  }
  return copy
}
