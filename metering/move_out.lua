-- move_out.lua: a user leaves its shard for a project in another one
-- (move_shards.go): its hash here becomes a tombstone naming the move, so
-- no script here uses it any more, and keeps its fields for the new shard
-- to copy.
--
-- KEYS[1] user hash   KEYS[2] the user's in-flight set
-- KEYS[3] the user's credit-lease set
-- ARGV[1] move id   ARGV[2] now, Unix ms   ARGV[3] the move's config version
-- ARGV[4] seconds the tombstone lives
--
-- Answers {0} moved out (now or before, by this move), {-1} not loaded,
-- {-7} deleted, or moved out by another move, {5, n} n requests in flight,
-- {6, n} n credit leases open (their reservations and leases settle
-- against this hash: the caller recalls leases and asks to try again).

local u = redis.call('HMGET', KEYS[1], 'v', 'del', 'mo', 'aw')
if u[3] == ARGV[1] then return {0} end
if u[2] then return {-7} end
if not u[1] or not u[4] then return {-1} end
local n = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[2], '+inf')
if n > 0 then return {5, n} end
n = redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[2], '+inf')
if n > 0 then return {6, n} end
redis.call('HSET', KEYS[1], 'del', '1', 'mo', ARGV[1], 'mv', u[1], 'v', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {0}
