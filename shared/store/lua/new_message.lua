-- Store a new message under the chat's next message id, in one round trip.
-- KEYS[1] the chat's message sequence   KEYS[2] the chat's messages hash
-- ARGV[1] the message as a msgpack map whose last key, "i", still lacks its value:
--         the new id, which this script appends
-- Returns the new message id.
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1] .. cmsgpack.pack(id))
return id
