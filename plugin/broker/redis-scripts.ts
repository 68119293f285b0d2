/*
 * The Redis broker's Lua scripts. Each runs atomically, so an entry's append to its topic's
 * stream, its notification and the topic's epoch never disagree.
 *
 * Keys: KEYS[1] the topic's stream, KEYS[2] its meta hash (`epoch`, and `published` once the
 * stream has held an entry). A topic whose meta is gone, or whose stream is gone after it held
 * entries, lost its history: it gets a new epoch (ARGV[1], chosen by the caller).
 */

const EPOCH = `
local function currentEpoch(candidate, ttl)
  local meta = redis.call('HMGET', KEYS[2], 'epoch', 'published')
  local epoch = meta[1]
  if (not epoch) or (meta[2] and redis.call('EXISTS', KEYS[1]) == 0) then
    epoch = candidate
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[2], 'epoch', epoch)
  end
  redis.call('EXPIRE', KEYS[2], ttl)
  return epoch
end

local function latestId()
  local latest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if latest[1] then return latest[1][1] end
  return '0-0'
end
`

/**
 * ARGV: candidate epoch, ttl seconds, max length, channel, event, data, traceparent, published at.
 * Appends, trims to about `max length`, and publishes `id \n previous id \n epoch \n` followed by
 * the message fields, so that a node can tell a gap from the previous id. Returns {id, epoch}.
 */
export const PUBLISH_SCRIPT = `${EPOCH}
local epoch = currentEpoch(ARGV[1], ARGV[2])
local previous = latestId()
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[5], 'd', ARGV[6], 't', ARGV[7], 'p', ARGV[8])
redis.call('HSET', KEYS[2], 'published', '1')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], id .. '\\n' .. previous .. '\\n' .. epoch .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[7] .. '\\n' .. ARGV[8] .. '\\n' .. ARGV[6])
return {id, epoch}
`

/** ARGV: candidate epoch, ttl seconds. Returns {latest id, epoch}. */
export const POSITION_SCRIPT = `${EPOCH}
local epoch = currentEpoch(ARGV[1], ARGV[2])
return {latestId(), epoch}
`

/**
 * ARGV: candidate epoch, ttl seconds, since. Returns {latest id, epoch, oldest id held, entries
 * trimmed so far, entries after since}.
 */
export const HISTORY_SCRIPT = `${EPOCH}
local epoch = currentEpoch(ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0-0', epoch, '0-0', 0, {}}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local length, added, first = 0, 0, '0-0'
for i = 1, #info, 2 do
  if info[i] == 'length' then length = info[i + 1]
  elseif info[i] == 'entries-added' then added = info[i + 1]
  elseif info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[3], '+')
return {latestId(), epoch, first, added - length, entries}
`
