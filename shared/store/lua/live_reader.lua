-- The live reader of a consumer (a WebSocket connection), if any.
-- KEYS[1] the consumer's live-reader mark
-- Returns the mark ('<connection>' or '<lease>|<connection>'), or nil.
--@include reader

local mark = live_reader(KEYS[1])
return mark
