-- Commit a consumer's cursor; it only ever moves forward within one epoch. With a
-- fifth key, also clear the consumer's live-reader mark if it is still the given
-- reader's (a WebSocket reader going away commits and lets go in one call).
-- KEYS[1] cursors hash   KEYS[2] epoch   KEYS[3] the update log
-- KEYS[4] updates appended in the epoch   KEYS[5] (optional) live reader mark
-- ARGV[1] consumer field ARGV[2] epoch of the cursor ('' for nothing to commit)
-- ARGV[3] update id (decimal)   ARGV[4] (with KEYS[5]) the reader's id
-- Returns 1 when moved, 0 when not newer (or nothing to commit), -1 when the epoch
-- is not the log's.
--
-- Beside the cursor, field "<consumer>#n" holds its ordinal (how many updates of
-- the epoch are at or below it) while it can be known: a reader that finds the
-- updates after its cursor trimmed tells exactly how many it lost.
--@include ordinal

local function commit()
  if ARGV[2] == '' then
    return 0
  end
  local current_epoch = redis.call('GET', KEYS[2])
  if current_epoch and current_epoch ~= ARGV[2] then
    return -1
  end
  local stored = redis.call('HGET', KEYS[1], ARGV[1])
  if stored then
    local sep = string.find(stored, ':', 1, true)
    local stored_epoch = string.sub(stored, 1, sep - 1)
    local stored_id = tonumber(string.sub(stored, sep + 1))
    if stored_epoch == ARGV[2] and stored_id >= tonumber(ARGV[3]) then
      return 0
    end
  end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
  local n = ordinal_at(KEYS[3], KEYS[4], ARGV[3])
  if n then
    redis.call('HSET', KEYS[1], ARGV[1] .. '#n', n)
  else
    redis.call('HDEL', KEYS[1], ARGV[1] .. '#n')
  end
  return 1
end

local result = commit()
if KEYS[5] and redis.call('GET', KEYS[5]) == ARGV[4] then
  redis.call('DEL', KEYS[5])
end
return result
