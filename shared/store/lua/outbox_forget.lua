-- Take a chat out of the outbox index, unless it was named again since it was read.
-- KEYS[1] the index (sorted set)   ARGV[1] chat id   ARGV[2] its score when read
-- Returns 1 when removed.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
