-- After the store found a new Redis server behind a connection (a failover, a
-- restart), make sure a bot's log does not hand out again what this process saw
-- appended before: a lost tail becomes a hole the next entry points across.
-- KEYS[1] epoch   KEYS[2] last stream id   KEYS[3] updates appended in the epoch
-- ARGV[1] the epoch of the newest entry this process appended
-- ARGV[2] that entry's stream id   ARGV[3] its ordinal
-- Returns 1 when the log had lost that entry (its head and count are moved up to
-- it, so the next append names it as its predecessor and counts on from it), else 0.
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then
  return 0  -- a new epoch (or none): the log tells that loss itself
end
local function older(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local fixed = 0
local last = redis.call('GET', KEYS[2])
if (not last) or older(last, ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
  fixed = 1
end
if tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[3], ARGV[3])
  fixed = 1
end
return fixed
