-- Claim a username, or take over a stale claim (compare and set).
-- KEYS[1] the name's claim (keys.username_owner): '<owner> <ms>', ms the Redis time
--         it was made
-- ARGV[1] the new owner: 'u<id>' or 'b<id>'
-- ARGV[2] '' to claim a free name only; else the claim as the caller read it, to
--         take over (the caller found that the record it names does not exist)
-- ARGV[3] grace ms: a claim younger than this is never taken over
-- Returns {1, claim} when ARGV[1] holds the name now, else {0, the current claim}.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local current = redis.call('GET', KEYS[1])
if current then
  if ARGV[2] == '' or current ~= ARGV[2] then
    return {0, current}
  end
  local made = tonumber(string.match(current, ' (%d+)$'))
  if made and ms - made < tonumber(ARGV[3]) then
    return {0, current}
  end
end
local claim = ARGV[1] .. ' ' .. ms
redis.call('SET', KEYS[1], claim)
return {1, claim}
