-- Store a message and queue the updates it causes, in one step (the chat's outbox).
-- KEYS[1] the chat's message sequence   KEYS[2] the chat's messages hash
-- KEYS[3] the chat's outbox hash        KEYS[4] the outbox clock (last outbox seq)
-- KEYS[5] an idempotency key (read and written only when ARGV[5] ~= '')
-- ARGV[1] 'new': ARGV[2] is a msgpack map whose last key, "i", still lacks its value
--         (the new id, which this script appends); 'save': ARGV[2] is the whole
--         message stored under id ARGV[3]; 'none': nothing is stored
-- ARGV[4] the pending updates (msgpack), '' when the write causes none
-- ARGV[5] idempotency ttl in seconds, '' without a key
-- KEYS[6] the chat's history hash (floor, hour, horizon, target; see trim below)
-- KEYS[7] the chat's hour marks (sorted set: score the hour, member its first id)
-- KEYS[8] the chat's users' send bucket (read and written only when ARGV[8] ~= '')
-- ARGV[6] the most messages kept per chat (0: no cap)
-- ARGV[7] how long messages are kept, in ms (0: for ever)
-- ARGV[8] tokens per second of the send bucket ('' for none)   ARGV[9] its capacity
-- Returns {message id, outbox seq ('' when nothing was queued), outbox length,
--          replayed 0/1, ms to wait (0, or when the send bucket refused: nothing
--          was written)}.
--
-- An outbox entry is "<message id>|<pending updates>" under a seq that is strictly
-- increasing per chat and time-ordered (ms * 1024 + n), so it is never reused even
-- when a failover lost the clock's newest value. The updates are appended to each
-- bot's log with that seq; each log remembers the newest seq it holds per chat
-- (append_update.lua), so draining an entry twice appends nothing twice.
if ARGV[5] ~= '' then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    return {tonumber(prior), '', 0, 1, 0}
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local HOUR = 3600000
local TRIM_PER_WRITE = 100

-- Users' messages into the chat take a token of its bucket first (the same
-- bucket as rate_limit.lua's): a refused write changes nothing.
if ARGV[8] ~= '' then
  local rate, cap = tonumber(ARGV[8]), tonumber(ARGV[9])
  local b = redis.call('HMGET', KEYS[8], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or cap
  local ts = tonumber(b[2]) or now
  tokens = math.min(cap, tokens + (now - ts) * rate / 1000)
  if tokens < 1 then
    return {0, '', 0, 0, math.ceil((1 - tokens) * 1000 / rate)}
  end
  redis.call('HSET', KEYS[8], 'tokens', tostring(tokens - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[8], math.ceil(cap * 1000 / rate) + 1000)
end

-- History is bounded: a new message lets the oldest ones go, those past the cap
-- and those of hours entirely older than the retention, at most TRIM_PER_WRITE
-- per write (a backlog goes over the next writes). A chat without writes for the
-- whole retention loses its messages at once, by expiry. The history hash keeps
-- `floor` (the lowest id that may still exist), the `hour` whose first id the
-- hour marks hold last, and the retention's `target` computed at `horizon`, so
-- that a write costs the marks' commands only once an hour.
local function trim(id)
  local cap, keep = tonumber(ARGV[6]), tonumber(ARGV[7])
  local h = redis.call('HMGET', KEYS[6], 'floor', 'hour', 'horizon', 'target')
  local floor = tonumber(h[1] or '1')
  local target = floor
  if cap > 0 and id - cap + 1 > target then target = id - cap + 1 end
  if keep > 0 then
    local hour = math.floor(now / HOUR)
    local horizon = math.floor((now - keep) / HOUR)  -- hours below it are all expired
    local kept = tonumber(h[4] or '1')
    if tonumber(h[2] or '-1') ~= hour or tonumber(h[3] or '-1') ~= horizon then
      if tonumber(h[2] or '-1') < hour then
        redis.call('ZADD', KEYS[7], hour, id)
        redis.call('PEXPIRE', KEYS[2], keep + 2 * HOUR)
        redis.call('PEXPIRE', KEYS[7], keep + 2 * HOUR)
      end
      redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. horizon)
      local oldest = redis.call('ZRANGE', KEYS[7], 0, 0)
      kept = tonumber(oldest[1] or '1')
      redis.call('HSET', KEYS[6], 'hour', hour, 'horizon', horizon, 'target', kept)
    end
    if kept > target then target = kept end
  end
  local stop = math.min(target - 1, floor + TRIM_PER_WRITE - 1)
  if stop >= floor then
    local ids = {}
    for i = floor, stop do ids[#ids + 1] = i end
    redis.call('HDEL', KEYS[2], unpack(ids))
    redis.call('HSET', KEYS[6], 'floor', stop + 1)
  end
end

local id = 0
if ARGV[1] == 'new' then
  id = redis.call('INCR', KEYS[1])
  if id > 1 and redis.call('EXISTS', KEYS[2]) == 0 then
    -- the history expired as a whole: nothing below this id is left
    redis.call('HSET', KEYS[6], 'floor', id)
  end
  redis.call('HSET', KEYS[2], id, ARGV[2] .. cmsgpack.pack(id))
  trim(id)
elseif ARGV[1] == 'save' then
  id = tonumber(ARGV[3])
  if id >= tonumber(redis.call('HGET', KEYS[6], 'floor') or '1') then
    redis.call('HSET', KEYS[2], id, ARGV[2])  -- (a message trimmed meanwhile stays gone)
  end
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], id, 'EX', tonumber(ARGV[5]))
end

if ARGV[4] == '' then
  return {id, '', 0, 0, 0}
end
local seq = now * 1024
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
if seq <= last then
  seq = last + 1
end
local text = string.format('%.0f', seq)
redis.call('SET', KEYS[4], text)
redis.call('HSET', KEYS[3], text, id .. '|' .. ARGV[4])
return {id, text, redis.call('HLEN', KEYS[3]), 0, 0}
