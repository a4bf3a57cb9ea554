-- Record one member's vote in a poll, unless the poll is closed.
-- KEYS[1] the poll's votes hash (member -> JSON list of option ids; the closed
--         field once the poll is closed)
-- ARGV[1] the member   ARGV[2] the JSON option ids, '' to take the vote back
-- ARGV[3] the closed field's name
-- Returns {1 when recorded (0: the poll is closed, nothing changed),
--          the member's previous vote ('' when none)}.
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  return {0, ''}
end
local previous = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return {1, previous}
