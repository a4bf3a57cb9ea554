-- (included) ordinal_at(log, count_key, update_id): how many updates of the log's
-- epoch have an id at or below `update_id` (decimal text), or nil when that cannot
-- be known any more (the updates around it were trimmed, or carry no ordinal).
local function stream_id(update_id)
  local id = tonumber(update_id)
  local seq = id % 1024
  return string.format('%d', (id - seq) / 1024) .. '-' .. string.format('%d', seq)
end

local function field(entry, name)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function ordinal_at(log, count_key, update_id)
  if tonumber(update_id) <= 0 then return 0 end
  local sid = stream_id(update_id)
  local before = redis.call('XREVRANGE', log, sid, '-', 'COUNT', 1)
  if before[1] then
    return tonumber(field(before[1], 'n'))
  end
  local after = redis.call('XRANGE', log, '(' .. sid, '+', 'COUNT', 1)
  if after[1] then
    -- nothing at or below the id is left: the first entry above it knows the count
    -- only if its predecessor is at or below the id
    local prev = field(after[1], 'p') or '0-0'
    local pms, pseq = string.match(prev, '^(%d+)-(%d+)$')
    local n = tonumber(field(after[1], 'n'))
    if n and tonumber(pms) * 1024 + tonumber(pseq) <= tonumber(update_id) then
      return n - 1
    end
    return nil
  end
  -- the log holds nothing above the id either: every update so far is at or below it
  return tonumber(redis.call('GET', count_key) or '0')
end
