-- Commit a consumer's cursor; it only ever moves forward within one epoch.
-- KEYS[1] cursors hash   KEYS[2] epoch
-- ARGV[1] consumer field ARGV[2] epoch of the cursor ARGV[3] update id (decimal)
-- Returns 1 when moved, 0 when not newer, -1 when the epoch is not the log's.
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
return 1
