-- A live reader goes: commit its last cursor (forward only, within the log's
-- epoch, as commit_cursor.lua) and clear its live mark if the mark is still its own.
-- KEYS[1] cursors hash   KEYS[2] epoch   KEYS[3] live reader mark of the consumer
-- ARGV[1] consumer field ARGV[2] epoch of the cursor ('' for no cursor to commit)
-- ARGV[3] update id (decimal)   ARGV[4] the reader's id
-- Returns {committed: 1 moved, 0 not newer or none, -1 other epoch; mark cleared 0/1}.
local committed = 0
if ARGV[2] ~= '' then
  local current_epoch = redis.call('GET', KEYS[2])
  if current_epoch and current_epoch ~= ARGV[2] then
    committed = -1
  else
    committed = 1
    local stored = redis.call('HGET', KEYS[1], ARGV[1])
    if stored then
      local sep = string.find(stored, ':', 1, true)
      local stored_epoch = string.sub(stored, 1, sep - 1)
      local stored_id = tonumber(string.sub(stored, sep + 1))
      if stored_epoch == ARGV[2] and stored_id >= tonumber(ARGV[3]) then
        committed = 0
      end
    end
    if committed == 1 then
      redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
    end
  end
end
local cleared = 0
if redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
  cleared = 1
end
return {committed, cleared}
