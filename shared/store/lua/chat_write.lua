-- Store a message and queue the updates it causes, in one step (the chat's outbox).
-- KEYS[1] the chat's message sequence   KEYS[2] the chat's messages hash
-- KEYS[3] the chat's outbox hash        KEYS[4] the outbox clock (last outbox seq)
-- KEYS[5] an idempotency key (read and written only when ARGV[5] ~= '')
-- ARGV[1] 'new': ARGV[2] is a msgpack map whose last key, "i", still lacks its value
--         (the new id, which this script appends); 'save': ARGV[2] is the whole
--         message stored under id ARGV[3]; 'none': nothing is stored
-- ARGV[4] the pending updates (msgpack), '' when the write causes none
-- ARGV[5] idempotency ttl in seconds, '' without a key
-- Returns {message id, outbox seq ('' when nothing was queued), outbox length,
--          replayed 0/1}.
--
-- An outbox entry is "<message id>|<pending updates>" under a seq that is strictly
-- increasing per chat and time-ordered (ms * 1024 + n), so it is never reused even
-- when a failover lost the clock's newest value. The updates are appended to each
-- bot's log with that seq; each log remembers the newest seq it holds per chat
-- (append_update.lua), so draining an entry twice appends nothing twice.
if ARGV[5] ~= '' then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    return {tonumber(prior), '', 0, 1}
  end
end

local id = 0
if ARGV[1] == 'new' then
  id = redis.call('INCR', KEYS[1])
  redis.call('HSET', KEYS[2], id, ARGV[2] .. cmsgpack.pack(id))
elseif ARGV[1] == 'save' then
  id = tonumber(ARGV[3])
  redis.call('HSET', KEYS[2], id, ARGV[2])
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], id, 'EX', tonumber(ARGV[5]))
end

if ARGV[4] == '' then
  return {id, '', 0, 0}
end
local t = redis.call('TIME')
local seq = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1024
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
if seq <= last then
  seq = last + 1
end
local text = string.format('%.0f', seq)
redis.call('SET', KEYS[4], text)
redis.call('HSET', KEYS[3], text, id .. '|' .. ARGV[4])
return {id, text, redis.call('HLEN', KEYS[3]), 0}
