import createError from '@fastify/error'

/*
 * Errors thrown at the developer: bad options and programming mistakes, each with a stable code
 * and a message that names the bad value. Errors sent to clients live in protocol/codes.ts;
 * docs/errors.md explains every code of both, and a test keeps it complete.
 */

export const FRT_ERR_INVALID_OPTION = createError<'FRT_ERR_INVALID_OPTION', [string, string]>(
  'FRT_ERR_INVALID_OPTION', 'fastify-realtime option %s is invalid: %s', 500, TypeError)

export const FRT_ERR_INVALID_NAME = createError<'FRT_ERR_INVALID_NAME', [string, string]>(
  'FRT_ERR_INVALID_NAME', 'Invalid %s name "%s": use a letter, then letters, digits, "_", ".", ":" or "-", 64 at most', 500, TypeError)

export const FRT_ERR_DUPLICATE_MESSAGE = createError<'FRT_ERR_DUPLICATE_MESSAGE', [string, string]>(
  'FRT_ERR_DUPLICATE_MESSAGE', 'Message type "%s" is declared twice on route %s', 500)

export const FRT_ERR_ROUTE_READY = createError<'FRT_ERR_ROUTE_READY', [string, string]>(
  'FRT_ERR_ROUTE_READY', 'Cannot declare message type "%s" on route %s after the server started: declare messages before app.ready()', 500)

export const FRT_ERR_UNKNOWN_EVENT = createError<'FRT_ERR_UNKNOWN_EVENT', [string, string]>(
  'FRT_ERR_UNKNOWN_EVENT', 'Event "%s" is not declared on route %s: add it to the route\'s events', 500)

export const FRT_ERR_INVALID_CODE = createError<'FRT_ERR_INVALID_CODE', [string]>(
  'FRT_ERR_INVALID_CODE', 'Error code %s is invalid: use UPPER_SNAKE_CASE, e.g. ROOM_FULL', 500, TypeError)

export const FRT_ERR_INVALID_TOPIC = createError<'FRT_ERR_INVALID_TOPIC', [string]>(
  'FRT_ERR_INVALID_TOPIC', 'Invalid topic %s: use a non-empty string of at most 256 characters', 500, TypeError)
