-- Count the entries of a stream after a position (pending updates of a consumer).
-- KEYS[1] log stream
-- ARGV[1] range start ('-' or '(<stream id>')   ARGV[2] stop counting at this many
-- Returns the count (at most ARGV[2]).
local start, limit, n = ARGV[1], tonumber(ARGV[2]), 0
if start == '-' then
  -- a consumer that never confirmed anything: everything retained is pending
  n = redis.call('XLEN', KEYS[1])
  if n > limit then n = limit end
  return n
end
while n < limit do
  local batch = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1000)
  n = n + #batch
  if #batch < 1000 then break end
  start = '(' .. batch[#batch][1]
end
if n > limit then n = limit end
return n
