-- Record the outcome of a delivery attempt, only if the webhook was not set again
-- (or deleted) meanwhile: a dispatcher working on an old configuration must not
-- overwrite the state of the new one.
-- KEYS[1] webhook hash
-- ARGV[1] configuration version the attempt used
-- ARGV[2] 'error', 'inactive' or 'ip'   ARGV[3] unix time   ARGV[4] message or address
-- Returns 1 when recorded, 0 when the configuration changed.
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'ip' then
  redis.call('HSET', KEYS[1], 'ip_address', ARGV[4])
  return 1
end
redis.call('HSET', KEYS[1], 'last_error_date', ARGV[3], 'last_error_message', ARGV[4])
if ARGV[2] == 'inactive' then
  redis.call('HSET', KEYS[1], 'active', '0')
end
return 1
