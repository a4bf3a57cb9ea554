-- Store a message and queue the updates it causes, in one step (the chat's outbox).
-- KEYS[1] the chat's message sequence (the last id issued)   KEYS[2] its messages hash
-- KEYS[3] the chat's outbox hash        KEYS[4] the outbox clock (last outbox seq)
-- KEYS[5] an idempotency key (read and written only when ARGV[5] ~= '')
-- ARGV[1] 'new': ARGV[2] is a msgpack map whose last key, "i", still lacks its value
--         (the new id, which this script appends); 'save': ARGV[2] is the whole
--         message stored under id ARGV[3]; 'delete': the message ARGV[3] is
--         deleted (nothing is queued if it was not there); 'none': nothing is stored
-- ARGV[4] the pending updates (msgpack), '' when the write causes none
-- ARGV[5] idempotency ttl in seconds, '' without a key
-- KEYS[6] the chat's history hash (hour, horizon, target; see trim below)
-- KEYS[7] the chat's hour marks (sorted set: score the hour, member its first id)
-- KEYS[8] the chat's users' send bucket (read and written only when ARGV[8] ~= '')
-- KEYS[9] the chat's message ids (sorted set: score and member the id)
-- ARGV[6] the most messages kept per chat (0: no cap)
-- ARGV[7] how long messages are kept, in ms (0: for ever)
-- ARGV[8] tokens per second of the send bucket ('' for none)   ARGV[9] its capacity
-- Returns {message id, outbox seq ('' when nothing was queued), outbox length,
--          replayed 0/1, ms to wait (0, or when the send bucket refused: nothing
--          was written)}.
--
-- A new message's id is time-ordered like the outbox seq below: the larger of
-- now_ms * 1024 and the last id + 1. A failover that lost the newest writes sets
-- the sequence back but not the clock, so the new primary never issues an id
-- again (as long as the primaries' clocks agree within the failover's time).
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
-- every time-ordered id is above it; a sequence below it counted 1, 2, 3 ...
local COUNTED_IDS_BELOW = 2 ^ 40

-- ids are below 2^53, exact in Lua's doubles, but Lua writes large ones with an
-- exponent: every id given to Redis or joined to a string goes through this
local function decimal(n)
  return string.format('%.0f', n)
end

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

-- A chat written while ids were counted has no index: its first write since
-- indexes every message it holds, once.
local function index_counted()
  local held = redis.call('HKEYS', KEYS[2])
  for first = 1, #held, 1000 do
    local batch = {}
    for i = first, math.min(first + 999, #held) do
      batch[#batch + 1] = held[i]  -- score
      batch[#batch + 1] = held[i]  -- member
    end
    redis.call('ZADD', KEYS[9], unpack(batch))
  end
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[9], ttl)
  end
end

-- History is bounded: a new message lets the oldest ones go, those past the cap
-- (the index counts them) and those of hours entirely older than the retention,
-- at most TRIM_PER_WRITE per write (a backlog goes over the next writes). A chat
-- without writes for the whole retention loses its messages and their index at
-- once, by expiry. The history hash keeps the `hour` whose first id the hour
-- marks hold last, and the retention's `target` (the first id kept) computed at
-- `horizon`, so that a write costs the marks' commands only once an hour.
local function trim(id)
  local cap, keep = tonumber(ARGV[6]), tonumber(ARGV[7])
  local held = redis.call('ZCARD', KEYS[9])
  local excess = 0
  if cap > 0 then
    excess = held - cap
  end
  if keep > 0 then
    local h = redis.call('HMGET', KEYS[6], 'hour', 'horizon', 'target')
    local hour = math.floor(now / HOUR)
    local horizon = math.floor((now - keep) / HOUR)  -- hours below it are all expired
    local kept = tonumber(h[3] or '0')
    local marked = tonumber(h[1] or '-1')
    if held == 1 or marked < hour then
      -- a new history (the first message, or all the others expired or deleted)
      -- or a new hour: the whole history expires if no write follows
      redis.call('PEXPIRE', KEYS[2], keep + 2 * HOUR)
      redis.call('PEXPIRE', KEYS[9], keep + 2 * HOUR)
    end
    if marked ~= hour or tonumber(h[2] or '-1') ~= horizon then
      if marked < hour then
        local first = decimal(id)
        if redis.call('EXISTS', KEYS[7]) == 0 then
          -- no marks (a new history, or one kept for ever until now): all it
          -- holds counts as this hour's
          first = redis.call('ZRANGE', KEYS[9], 0, 0)[1]
        end
        redis.call('ZADD', KEYS[7], hour, first)
        redis.call('PEXPIRE', KEYS[7], keep + 2 * HOUR)
      end
      redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. horizon)
      local oldest = redis.call('ZRANGE', KEYS[7], 0, 0)
      kept = tonumber(oldest[1] or '0')
      redis.call('HSET', KEYS[6], 'hour', hour, 'horizon', horizon, 'target', decimal(kept))
    end
    if kept > 0 then
      local expired = redis.call('ZCOUNT', KEYS[9], '-inf', '(' .. decimal(kept))
      if expired > excess then
        excess = expired
      end
    end
  end
  if excess > TRIM_PER_WRITE then
    excess = TRIM_PER_WRITE
  end
  if excess > 0 then
    local oldest = redis.call('ZRANGE', KEYS[9], 0, excess - 1)
    redis.call('HDEL', KEYS[2], unpack(oldest))
    redis.call('ZREM', KEYS[9], unpack(oldest))
  end
end

local id = 0
if ARGV[1] == 'new' then
  local last = tonumber(redis.call('GET', KEYS[1]) or '0')
  if last > 0 and last < COUNTED_IDS_BELOW then
    index_counted()
  end
  id = now * 1024
  if id <= last then
    id = last + 1
  end
  local text = decimal(id)
  redis.call('SET', KEYS[1], text)
  redis.call('HSET', KEYS[2], text, ARGV[2] .. cmsgpack.pack(id))
  redis.call('ZADD', KEYS[9], text, text)
  trim(id)
elseif ARGV[1] == 'save' then
  id = tonumber(ARGV[3])
  if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[3], ARGV[2])  -- (one trimmed or deleted meanwhile stays gone)
  end
elseif ARGV[1] == 'delete' then
  id = tonumber(ARGV[3])
  if redis.call('HDEL', KEYS[2], ARGV[3]) == 0 then
    return {id, '', 0, 0, 0}
  end
  redis.call('ZREM', KEYS[9], ARGV[3])
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], decimal(id), 'EX', tonumber(ARGV[5]))
end

if ARGV[4] == '' then
  return {id, '', 0, 0, 0}
end
local seq = now * 1024
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
if seq <= last then
  seq = last + 1
end
local text = decimal(seq)
redis.call('SET', KEYS[4], text)
redis.call('HSET', KEYS[3], text, decimal(id) .. '|' .. ARGV[4])
return {id, text, redis.call('HLEN', KEYS[3]), 0, 0}
