-- load.lua: write the Postgres view of a user or project into Redis without
-- ever going backwards.
--
-- KEYS[1] the user or project hash
-- ARGV[1] config version from Postgres
-- ARGV[2] number C of config field/value pairs that follow, then C pairs,
--         then balance field/value pairs.
--
-- The key index is not touched here: it is under the deployment's own
-- hash tag, the hash under its shard's (rediskeys.go), and one script
-- touches one slot. The caller updates it after (load.go).
--
-- Config fields (name, key hash, status, project, settings) are written when
-- Postgres's version is not older than Redis's, so an admin change and a
-- concurrent cold load cannot leave the older config behind. A config field
-- the hash lacks altogether is written whatever the versions (Redis cannot
-- hold a newer value of a field it never had): that is how a field added by
-- an upgrade, such as the partner flag 'pt', reaches hashes written before
-- it. Balance fields are only set when absent: once in Redis, Redis owns
-- them.
--
-- Answers {1} when the config was written, {0} when Redis had a newer one.

local v = tonumber(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'v')
local c = tonumber(ARGV[2])
local first_balance = 3 + 2 * c
local wrote = 0
if not cur or tonumber(cur) <= v then
  if c > 0 then
    redis.call('HSET', KEYS[1], 'v', v, unpack(ARGV, 3, first_balance - 1))
  else
    redis.call('HSET', KEYS[1], 'v', v)
  end
  wrote = 1
elseif redis.call('HEXISTS', KEYS[1], 'del') == 0 then
  for i = 3, first_balance - 1, 2 do
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
for i = first_balance, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {wrote}
