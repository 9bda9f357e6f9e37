-- delete_user.lua: retire a user in Redis unless it has requests in flight,
-- atomically with respect to charges (which add to the in-flight set in
-- the same script that takes the money).
--
-- KEYS[1] user hash   KEYS[2] the user's in-flight set
-- ARGV[1] now, Unix ms   ARGV[2] config version to stamp (the deleting
-- transaction's)   ARGV[3] seconds the tombstone lives
--
-- The caller removes the key's entry from the key index after: the index
-- is under the deployment's own hash tag (rediskeys.go), and a stale
-- entry is harmless, the user hash no longer holding the key.
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
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'kh', '', 'st', '0', 'del', '1')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
return {0}
