-- Restore a gateway worker's live-reader marks of one bot and renew its lease on
-- them: run when the lease held another digest of the marks, or none (it ran out,
-- or a failover or restart lost keys), so marks may be missing or stale.
-- KEYS[1] the worker's lease key of the bot   KEYS[2..] the marks of its readers
-- ARGV[1] lease ttl ms   ARGV[2] digest of the marks   ARGV[3] the worker's lease id
-- ARGV[4..] each mark's value ('<lease>|<connection>'), in the order of KEYS[2..]
-- A mark that another live reader holds (a takeover raced the renewal) stays its.
-- Returns how many marks were written.
--@include reader

local mine = ARGV[3] .. '|'
local written = 0
for i = 2, #KEYS do
  local held = live_reader(KEYS[i])
  if (not held or string.sub(held, 1, #mine) == mine) and held ~= ARGV[i + 2] then
    redis.call('SET', KEYS[i], ARGV[i + 2])
    written = written + 1
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return written
