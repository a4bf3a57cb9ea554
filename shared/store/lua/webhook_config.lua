-- Set or delete a bot's webhook, optionally dropping the pending updates.
-- KEYS[1] webhook hash  KEYS[2] cursors hash  KEYS[3] epoch  KEYS[4] last stream id
-- KEYS[5] updates appended in the epoch (the ordinal of the newest update)
-- ARGV[1] 'set' or 'delete'   ARGV[2] '1' to drop pending updates
-- ARGV[3] candidate epoch     ARGV[4] wake-up channel   ARGV[5] consumer the webhook reads
-- ARGV[6], ARGV[7], ... field, value pairs of the configuration ('set')
-- Returns the new configuration version ('set'), or 1 / 0: a webhook existed ('delete').
-- Dropping confirms every update in the log for the consumer (it moves the committed
-- cursor to the newest update); the log itself keeps them for other consumers.
local hook, cursors, epoch_key, last_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

if ARGV[2] == '1' then
  local last = redis.call('GET', last_key)
  if last then
    local epoch = redis.call('GET', epoch_key)
    if not epoch then
      epoch = ARGV[3]
      redis.call('SET', epoch_key, epoch)
    end
    local ms, seq = string.match(last, '^(%d+)-(%d+)$')
    local head = tonumber(ms) * 1024 + tonumber(seq)
    local stored = redis.call('HGET', cursors, ARGV[5])
    local current = -1
    if stored then
      local sep = string.find(stored, ':', 1, true)
      if sep and string.sub(stored, 1, sep - 1) == epoch then
        current = tonumber(string.sub(stored, sep + 1)) or -1
      end
    end
    if head > current then
      redis.call('HSET', cursors, ARGV[5], epoch .. ':' .. string.format('%d', head))
      local n = redis.call('GET', KEYS[5])
      if n then
        redis.call('HSET', cursors, ARGV[5] .. '#n', n)
      else
        redis.call('HDEL', cursors, ARGV[5] .. '#n')
      end
    end
  end
end

if ARGV[1] == 'delete' then
  local existed = redis.call('DEL', hook)
  if existed == 1 then
    redis.call('PUBLISH', ARGV[4], 'webhook deleted')
  end
  return existed
end

local t = redis.call('TIME')
local version = redis.call('HINCRBY', hook, 'version', 1)
redis.call('HDEL', hook, 'last_error_date', 'last_error_message', 'ip_address', 'secret',
  'allowed')
for i = 6, #ARGV, 2 do
  redis.call('HSET', hook, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', hook, 'active', '1', 'set_date', t[1])
redis.call('PUBLISH', ARGV[4], 'webhook set ' .. version)
return version
