-- delete_user.lua: retire a user in Redis unless it has requests in flight,
-- atomically with respect to charges (which add to the in-flight set in
-- the same script that takes the money).
--
-- KEYS[1] user hash   KEYS[2] the user's in-flight set   KEYS[3] key index
-- ARGV[1] now, Unix ms   ARGV[2] the user's key hash ("" for none)
-- ARGV[3] config version to stamp (the deleting transaction's)
-- ARGV[4] seconds the tombstone lives
--
-- Answers {0} done, {1, n} refused: n requests in flight.
--
-- The user hash becomes a tombstone rather than vanishing: marked 'del'
-- (every money script refuses it), no key hash, inactive, and a version
-- newer than what other readers of Postgres see,
-- so neither a charge nor a concurrent cold load (load.lua never writes
-- an older config) can bring the key back before Postgres commits the
-- delete. It expires by itself; by then Postgres has no such user.

local n = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
if n > 0 then return {1, n} end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'kh', '', 'st', '0', 'del', '1')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[3], ARGV[2]) end
return {0}
