-- move_in.lua: a user enters a shard (move_shards.go): its hash as the old
-- shard had it is copied here, replacing whatever this shard held for the
-- user (a tombstone of an earlier move away, a stale copy), unless this
-- move copied it already.
--
-- KEYS[1] user hash
-- ARGV[1] move id, then the hash's field/value pairs
--
-- Answers {0} copied, {3} copied before by this move.

if redis.call('HGET', KEYS[1], 'mi') == ARGV[1] then return {3} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'mi', ARGV[1], unpack(ARGV, 2))
return {0}
