/*
 * The Redis broker's presence scripts. Keys, both in the topic's hash slot: KEYS[1] a hash of
 * the topic's entries (connection id → `["<connection>","<node>",<user>,<info>]`, a JSON array
 * whose first two strings need no escaping), KEYS[2] a sorted set of the nodes holding entries,
 * scored by when their lease ends (Redis's own clock, so nodes' clocks do not matter).
 *
 * Every script first reaps: the entries of nodes whose lease ended are removed, and their leaves
 * published with the script's own changes, as `{"j":[<entry>…],"l":[<entry>…]}`. Scripts run
 * atomically, so a dead node's entries leave once however many nodes notice.
 *
 * Common ARGV: [1] this node's id (never reaped by itself), [2] lease ms, [3] the channel.
 */

const COMMON = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local node, lease, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local joins, leaves = {}, {}

local function nodeOf(value)
  return string.match(value, '^%["[^"]*","([^"]*)"')
end

local function reap()
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  local dead, any = {}, false
  for _, id in ipairs(expired) do
    if id ~= node then
      dead[id] = true
      any = true
      redis.call('ZREM', KEYS[2], id)
    end
  end
  if not any then return end
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if dead[nodeOf(all[i + 1])] then
      redis.call('HDEL', KEYS[1], all[i])
      table.insert(leaves, all[i + 1])
    end
  end
end

local function join(value)
  local connection = string.match(value, '^%["([^"]*)"')
  if redis.call('HGET', KEYS[1], connection) ~= value then
    redis.call('HSET', KEYS[1], connection, value)
    table.insert(joins, value)
  end
end

local function leave(connection)
  local old = redis.call('HGET', KEYS[1], connection)
  if old then
    redis.call('HDEL', KEYS[1], connection)
    table.insert(leaves, old)
  end
end

-- Renews this node's lease, or drops it when the node holds nothing here; returns 1 when the
-- lease was missing (Redis lost it, or reaped this node while it stalled).
local function renew(holding)
  local added = 0
  if holding then
    added = redis.call('ZADD', KEYS[2], now + lease, node)
  else
    redis.call('ZREM', KEYS[2], node)
  end
  -- Keys outlive every lease a little, then go by themselves if every node went.
  redis.call('PEXPIRE', KEYS[1], lease * 3)
  redis.call('PEXPIRE', KEYS[2], lease * 3)
  return added
end

local function announce()
  if #joins > 0 or #leaves > 0 then
    redis.call('PUBLISH', channel, '{"j":[' .. table.concat(joins, ',') .. '],"l":[' .. table.concat(leaves, ',') .. ']}')
  end
end
`

/**
 * ARGV[4]: entries this node holds on the topic after the change, ARGV[5]: n, then n entries
 * joining, then the connection ids leaving; at 0 held, any entry of this node still there goes
 * too. Returns 1 when this node's lease was missing.
 */
export const PRESENCE_UPDATE_SCRIPT = `${COMMON}
reap()
local n = tonumber(ARGV[5])
for i = 6, 5 + n do join(ARGV[i]) end
for i = 6 + n, #ARGV do leave(ARGV[i]) end
local holding = tonumber(ARGV[4]) > 0
if not holding then
  -- Without a lease nobody would ever reap what an earlier failed leave left of this node.
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if nodeOf(all[i + 1]) == node then
      redis.call('HDEL', KEYS[1], all[i])
      table.insert(leaves, all[i + 1])
    end
  end
end
local missing = renew(holding)
announce()
return missing
`

/**
 * ARGV[4..]: every entry this node holds on the topic. Makes the topic's entries of this node
 * exactly these, after an outage or a failed update. Returns nothing of use.
 */
export const PRESENCE_SYNC_SCRIPT = `${COMMON}
reap()
local mine = {}
for i = 4, #ARGV do mine[string.match(ARGV[i], '^%["([^"]*)"')] = true end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if nodeOf(all[i + 1]) == node and not mine[all[i]] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(leaves, all[i + 1])
  end
end
for i = 4, #ARGV do join(ARGV[i]) end
renew(#ARGV >= 4)
announce()
return 0
`

/** ARGV[4]: 1 when this node holds entries on the topic. Renews and reaps; returns 1 when this node's lease was missing. */
export const PRESENCE_TICK_SCRIPT = `${COMMON}
reap()
local missing = 0
if ARGV[4] == '1' then missing = renew(true) end
announce()
return missing
`

/** Reaps, then returns every entry of the topic. */
export const PRESENCE_READ_SCRIPT = `${COMMON}
reap()
announce()
return redis.call('HVALS', KEYS[1])
`
