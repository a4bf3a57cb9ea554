-- Token buckets: take one token from each bucket, or none when any is empty.
-- KEYS[i] bucket hash (fields: tokens, ts in ms)
-- ARGV[2i-1] rate per second for KEYS[i]   ARGV[2i] capacity for KEYS[i]
-- Returns 0 when allowed, else the ms to wait until every bucket has a token.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local state = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or cap
  local ts = tonumber(b[2]) or now
  tokens = math.min(cap, tokens + (now - ts) * rate / 1000)
  state[i] = tokens
  if tokens < 1 then
    local need = math.ceil((1 - tokens) * 1000 / rate)
    if need > wait then wait = need end
  end
end
if wait > 0 then
  return wait
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(state[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(cap * 1000 / rate) + 1000)
end
return 0
