-- Is a waiting getUpdates call still the consumer's reader?
-- KEYS[1] poll state hash  KEYS[2] live WebSocket reader mark (_reader.lua)
-- KEYS[3] webhook hash
-- ARGV[1] the poll's generation  ARGV[2] '1' when an active webhook would read this consumer
-- Returns 'ok', 'poll' (a newer poll began), 'reader' or 'webhook'.
--@include reader

if ARGV[2] == '1' and redis.call('HGET', KEYS[3], 'active') == '1' then
  return 'webhook'
end
if live_reader(KEYS[2]) then
  return 'reader'
end
local generation = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if generation > tonumber(ARGV[1]) then
  return 'poll'
end
return 'ok'
