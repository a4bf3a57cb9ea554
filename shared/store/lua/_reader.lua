-- (included) live_reader(mark_key): a consumer's live reader, from its mark (a key
-- the calling script declared). The mark is '<connection>', live while it exists
-- (it expires by itself), or '<lease>|<connection>', live while the gateway
-- worker's lease key of the bot exists: the mark's key up to the bot's hash tag,
-- then ':lease:<lease>' (shared/keys.py, bot_reader_lease), in the mark's slot.
-- Returns the mark when live, else false; and true as a second value when the
-- mark is there but its lease ran out (its worker is gone).
local function live_reader(mark_key)
  local mark = redis.call('GET', mark_key)
  if not mark then
    return false, false
  end
  local sep = string.find(mark, '|', 1, true)
  if not sep then
    return mark, false
  end
  local tag_end = string.find(mark_key, '}', 1, true)
  local lease_key = string.sub(mark_key, 1, tag_end) .. ':lease:' .. string.sub(mark, 1, sep - 1)
  if redis.call('EXISTS', lease_key) == 1 then
    return mark, false
  end
  return false, true
end
