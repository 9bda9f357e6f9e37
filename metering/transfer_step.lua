-- transfer_step.lua: one step of a transfer of awarded credits between
-- users in different shards (transfer_shards.go): the debit of the source
-- or the credit of the destination, with its ledger event, at most once.
--
-- KEYS[1] user hash   KEYS[2] event stream   KEYS[3] the step's marker
-- ARGV[1] delta, micro-credits (< 0 debit, > 0 credit)
-- ARGV[2] upper bound for a balance   ARGV[3] event id   ARGV[4] now, Unix ms
-- ARGV[5] actor   ARGV[6] note   ARGV[7] user id   ARGV[8] its project name
-- ARGV[9] seconds the marker lives
--
-- Answers {0, awarded after} when done, {3} when the marker says it was
-- done before (a retry), {1, awarded} when a debit lacks the credits,
-- {2, awarded} when a credit would pass the bound, {-1} when the user's
-- balances are not loaded, {-7} when the user was deleted. Everything is
-- read and checked before the first write: Redis does not roll back.

if redis.call('EXISTS', KEYS[3]) == 1 then return {3} end
local u = redis.call('HMGET', KEYS[1], 'aw', 'n', 'p', 'del')
if u[4] then return {-7} end
if not u[1] or not u[2] then return {-1} end
local delta, aw = tonumber(ARGV[1]), tonumber(u[1])
if aw + delta < 0 then return {1, aw} end
if aw + delta > tonumber(ARGV[2]) then return {2, aw} end

redis.call('HSET', KEYS[1], 'aw', aw + delta)
redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'k', 'transfer', 't', ARGV[4],
  'u', ARGV[7], 'un', u[2], 'p', u[3] or 0, 'pn', ARGV[8], 'aw', delta, 'ac', ARGV[5], 'no', ARGV[6])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[9])
return {0, aw + delta}
