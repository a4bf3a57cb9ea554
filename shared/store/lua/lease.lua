-- Renew or release a lease held by ARGV[2] (compare, then act: never another's).
-- KEYS[1] lease key
-- ARGV[1] 'renew' or 'release'   ARGV[2] holder id   ARGV[3] ttl ms (renew)
-- Returns 1 when the holder still had the lease, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
if ARGV[1] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 1
