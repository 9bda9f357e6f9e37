-- move_undo.lua: undo one side of a move between shards that Postgres
-- never committed (move_shards.go), if this move did it.
--
-- KEYS[1] user hash   ARGV[1] move id
-- ARGV[2] "out": the old shard's tombstone becomes the user again, at its
--         version before the move; "in": the new shard's copy is deleted
--
-- Answers {0} undone, {3} nothing of this move to undo.

if ARGV[2] == 'out' then
  local u = redis.call('HMGET', KEYS[1], 'mo', 'mv')
  if u[1] ~= ARGV[1] then return {3} end
  redis.call('HSET', KEYS[1], 'v', u[2])
  redis.call('HDEL', KEYS[1], 'del', 'mo', 'mv')
  redis.call('PERSIST', KEYS[1])
  return {0}
end
if redis.call('HGET', KEYS[1], 'mi') ~= ARGV[1] then return {3} end
redis.call('DEL', KEYS[1])
return {0}
