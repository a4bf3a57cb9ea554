-- The live webhook dispatchers: a heartbeat renews one's membership, a leave ends it.
-- KEYS[1] members (sorted set: dispatcher id -> Redis time in ms its membership ends)
-- ARGV[1] 'beat' or 'leave'   ARGV[2] dispatcher id   ARGV[3] membership ttl ms (beat)
-- Returns {joined, member, member, ...}: joined is 1 when the beat (re)added the
-- dispatcher (it was not a live member), the members are every live one, sorted.
-- Memberships that ran out are removed first, so a crashed dispatcher leaves the
-- set at the first beat of another after its last beat's ttl.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local joined = 0
if ARGV[1] == 'beat' then
  local ttl = tonumber(ARGV[3])
  joined = redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
  -- the set goes away by itself some time after the last dispatcher stopped
  redis.call('PEXPIRE', KEYS[1], ttl * 10)
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(members)
table.insert(members, 1, joined)
return members
