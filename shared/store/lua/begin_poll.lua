-- Start one getUpdates call (docs/design.md, Readers and cursors) in a single round
-- trip: refuse when another kind of reader holds the consumer, confirm the offset,
-- remember allowed_updates, take a poll generation (a newer poll ends older ones)
-- and apply the tight-loop guard.
-- KEYS[1] poll state hash of the consumer  KEYS[2] cursors hash  KEYS[3] epoch
-- KEYS[4] last stream id                   KEYS[5] live WebSocket reader mark (_reader.lua)
-- KEYS[6] webhook hash
-- ARGV[1] consumer   ARGV[2] offset as given ('' when absent; may be negative)
-- ARGV[3] candidate epoch (used when the bot never had an update)
-- ARGV[4] timeout ms   ARGV[5] allowed updates: '-' keep the remembered ones, else csv ('' all)
-- ARGV[6] '1' when an active webhook would read this consumer
-- ARGV[7] repeat window ms   ARGV[8] timeout ms of a repeated poll (at least)
-- ARGV[9] pacing ms of a repeated poll   ARGV[10] wake-up channel   ARGV[11] state ttl s
-- ARGV[12] entries to read after `after` when every type is allowed (0: read nothing)
-- ARGV[13] entries to read when allowed_updates filters   KEYS[7] the update log
-- KEYS[8] updates appended in the epoch
-- Returns {'webhook'} or {'reader', reader} or
--   {'ok', generation, epoch, after, allowed, timeout ms, pace ms, repeated 0/1, entries,
--    ordinal of after ('' when unknown)}
-- where `after` is the committed position the poll reads after and `entries` the
-- first log entries after it (XRANGE form), saving the poll its first read.
--@include ordinal
--@include reader

local state, cursors, epoch_key, last_key, reader_key, webhook_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local consumer, offset_text = ARGV[1], ARGV[2]

if ARGV[6] == '1' and redis.call('HGET', webhook_key, 'active') == '1' then
  return {'webhook'}
end
local reader, stale = live_reader(reader_key)
if reader then
  return {'reader', reader}
end
if stale then  -- the mark of a worker that is gone
  redis.call('DEL', reader_key)
end

local epoch = redis.call('GET', epoch_key)
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', epoch_key, epoch)
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local prev = redis.call('HMGET', state, 'offset', 'start', 'until', 'asked')
local generation = redis.call('HINCRBY', state, 'gen', 1)
if prev[3] and tonumber(prev[3]) > now then
  -- an older poll may still be waiting, here or on another worker: end it
  redis.call('PUBLISH', ARGV[10], 'poll ' .. consumer .. ' ' .. generation)
end

local timeout = tonumber(ARGV[4])
local pace = 0
local repeated = 0
-- a tight loop repeats the same call; a different timeout is a different call
-- (e.g. a client's confirming timeout=0 poll on shut-down after a long poll)
if prev[1] == offset_text and prev[2] and prev[4] == ARGV[4]
    and now - tonumber(prev[2]) < tonumber(ARGV[7]) then
  repeated = 1
  if timeout < tonumber(ARGV[8]) then
    timeout = tonumber(ARGV[8])
  end
  pace = tonumber(prev[2]) + tonumber(ARGV[9]) - now
  if pace < 0 then pace = 0 end
end

if ARGV[5] ~= '-' then
  redis.call('HSET', state, 'allowed', ARGV[5])
end
local allowed = redis.call('HGET', state, 'allowed') or ''
-- `start` is when this poll may first answer: pacing is measured from there, so a
-- loop of repeated polls gets at most one answer per pacing interval
redis.call('HSET', state, 'offset', offset_text, 'start', now + pace, 'until', now + timeout,
  'asked', ARGV[4])
redis.call('EXPIRE', state, tonumber(ARGV[11]))

-- the committed position of this consumer in the log's current epoch
local after = 0
local stored = redis.call('HGET', cursors, consumer)
if stored then
  local sep = string.find(stored, ':', 1, true)
  if sep and string.sub(stored, 1, sep - 1) == epoch then
    after = tonumber(string.sub(stored, sep + 1)) or 0
  end
end

local offset = tonumber(offset_text)
if offset and offset > 0 then
  -- offset confirms every update before it, but never past the newest one: an
  -- offset beyond the head must not swallow updates that do not exist yet
  local head = 0
  local last = redis.call('GET', last_key)
  if last then
    local ms, seq = string.match(last, '^(%d+)-(%d+)$')
    head = tonumber(ms) * 1024 + tonumber(seq)
  end
  local target = offset - 1
  if target > head then target = head end
  if target > after then
    after = target
    local text = string.format('%d', after)
    redis.call('HSET', cursors, consumer, epoch .. ':' .. text)
    local n = ordinal_at(KEYS[7], KEYS[8], text)
    if n then
      redis.call('HSET', cursors, consumer .. '#n', n)
    else
      redis.call('HDEL', cursors, consumer .. '#n')
    end
  end
end

local entries = {}
local count = tonumber(ARGV[12])
if count > 0 then
  if allowed ~= '' then count = tonumber(ARGV[13]) end
  local start = '-'
  if after > 0 then
    -- update id = ms * 1024 + sequence (exact: ids stay below 2^53)
    local seq = after % 1024
    start = '(' .. string.format('%d', (after - seq) / 1024) .. '-' .. string.format('%d', seq)
  end
  entries = redis.call('XRANGE', KEYS[7], start, '+', 'COUNT', count)
end

-- the ordinal of `after` (see commit_cursor.lua), '' when it is not known
local ordinal = ''
if after == 0 then
  ordinal = '0'
else
  local n = redis.call('HGET', cursors, consumer .. '#n')
  if n then ordinal = n end
end

return {'ok', generation, epoch, string.format('%d', after), allowed, timeout, pace, repeated,
  entries, ordinal}
