-- Append one update to a bot's log (docs/design.md, The update log).
-- KEYS[1] log stream      KEYS[2] epoch          KEYS[3] last stream id
-- KEYS[4] updates appended in the epoch (each entry's ordinal 'n' is the count after it)
-- KEYS[5] idempotency key (only read/written when ARGV[8] == '1')
-- ARGV[1] candidate epoch (used when the log is new or vanished)
-- ARGV[2] retention in ms   ARGV[3] approximate max length
-- ARGV[4] payload (msgpack) ARGV[5] update type   ARGV[6] chat id as the bot sees it
-- ARGV[7] wake-up channel   ARGV[8] '1' when an idempotency key is given
-- ARGV[9] idempotency key ttl in seconds
-- KEYS[6] (outbox drains only) the newest outbox seq the log holds, per chat
-- ARGV[10] the chat's internal id   ARGV[11] the outbox entry's seq
-- Returns {stream id, epoch, previous stream id ('0-0' at the start of an epoch),
--          replayed 0/1, or 2 when the outbox entry was appended before,
--          the entry's ordinal (0 when nothing was appended now)}.
local log, epoch_key, last_key, count_key, idem_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

if KEYS[6] then
  -- entries of one chat reach a log in seq order (chat_write.lua): an entry at or
  -- below the newest one held was appended already
  local held = tonumber(redis.call('HGET', KEYS[6], ARGV[10]) or '0')
  if tonumber(ARGV[11]) <= held then
    return {'0-0', redis.call('GET', epoch_key) or '', '0-0', 2, 0}
  end
  redis.call('HSET', KEYS[6], ARGV[10], ARGV[11])
end

if ARGV[8] == '1' then
  local prior = redis.call('GET', idem_key)
  if prior then
    local sep = string.find(prior, '|', 1, true)
    return {string.sub(prior, 1, sep - 1), redis.call('GET', epoch_key) or '', string.sub(prior, sep + 1), 1, 0}
  end
end

local epoch = redis.call('GET', epoch_key)
local last = redis.call('GET', last_key)
local log_exists = redis.call('EXISTS', log) == 1
local prev = '0-0'
if (not epoch) or (last and not log_exists) then
  -- a new log, or one that vanished (flush, lost data): a new epoch begins
  epoch = ARGV[1]
  redis.call('SET', epoch_key, epoch)
  redis.call('SET', count_key, 0)
elseif last then
  prev = last
end

local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = 0
if last then
  local lms_text, lseq_text = string.match(last, '^(%d+)-(%d+)$')
  local lms, lseq = tonumber(lms_text), tonumber(lseq_text)
  -- ids stay strictly increasing even when the clock stands still or steps back
  if ms <= lms then
    ms = lms
    seq = lseq + 1
    if seq >= 1024 then
      ms = lms + 1
      seq = 0
    end
  end
end

local id = string.format('%d-%d', ms, seq)
local n = redis.call('INCR', count_key)
redis.call('XADD', log, 'MAXLEN', '~', ARGV[3], id, 'd', ARGV[4], 't', ARGV[5], 'c', ARGV[6], 'p', prev,
  'n', n)
local floor_ms = ms - tonumber(ARGV[2])
if floor_ms > 0 then
  redis.call('XTRIM', log, 'MINID', '~', string.format('%d-0', floor_ms))
end
redis.call('SET', last_key, id)
if ARGV[8] == '1' then
  redis.call('SET', idem_key, id .. '|' .. prev, 'EX', tonumber(ARGV[9]))
end
redis.call('PUBLISH', ARGV[7], id .. ' ' .. prev)
return {id, epoch, prev, 0, n}
