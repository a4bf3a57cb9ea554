-- Change a chat's state and queue the updates the change causes, in one step (the
-- chat's outbox: the entry and its seq are those of chat_write.lua).
-- KEYS[1] the chat's outbox hash        KEYS[2] the outbox clock (last outbox seq)
-- KEYS[3] the hash of the chat the caller read to compute the change
-- KEYS[4..] further keys of the chat that the change writes (all in its slot)
-- ARGV[1] n, how many outbox entries the change queues (at least 1)
-- ARGV[2..n+1] their pending updates (msgpack), each its own entry under the next
--         seq: a log takes one update per entry (append_update.lua), so two updates
--         for one log are two entries, in the order given
-- ARGV[n+2] the fingerprint of KEYS[3] as the caller read it (see below)
-- ARGV[n+3..] the writes, three per write: 'set:<key index>' or 'del:<key index>',
--           the field, its value ('' for 'del')
-- Returns {0, '', 0} when KEYS[3] changed since it was read (nothing was written:
-- the caller reads it again and retries), else {1, the last entry's seq, outbox
-- length}.
--
-- The updates are rendered from the state the caller read (a message's reactions,
-- a poll's votes, the members, the pins), so they hold only if that state is still
-- the same: the fingerprint is the sha1 of the hash's fields in byte order, each
-- field and value prefixed by its length and ':'.
local flat = redis.call('HGETALL', KEYS[3])
local fields, values = {}, {}
for i = 1, #flat, 2 do
  fields[#fields + 1] = flat[i]
  values[flat[i]] = flat[i + 1]
end
table.sort(fields)
local parts = {}
for _, f in ipairs(fields) do
  local v = values[f]
  parts[#parts + 1] = #f .. ':' .. f .. #v .. ':' .. v
end
local n = tonumber(ARGV[1])
if redis.sha1hex(table.concat(parts)) ~= ARGV[n + 2] then
  return {0, '', 0}
end

for i = n + 3, #ARGV, 3 do
  local op, index = string.match(ARGV[i], '^(%a+):(%d+)$')
  local key = KEYS[tonumber(index)]
  if op == 'set' then
    redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HDEL', key, ARGV[i + 1])
  end
end

local t = redis.call('TIME')
local seq = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1024
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local text = ''
for i = 2, n + 1 do
  if seq <= last then
    seq = last + 1
  end
  last = seq
  text = string.format('%.0f', seq)
  redis.call('HSET', KEYS[1], text, '0|' .. ARGV[i])
end
redis.call('SET', KEYS[2], text)
return {1, text, redis.call('HLEN', KEYS[1])}
