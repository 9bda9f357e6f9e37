-- transfer.lua: move awarded credits from one user to another in one atomic
-- step, appending both ledger events, or change nothing.
--
-- KEYS[1] source user hash   KEYS[2] destination user hash   KEYS[3] event stream
-- ARGV[1] amount, micro-credits (> 0)   ARGV[2] upper bound for a balance
-- ARGV[3] source event id   ARGV[4] destination event id   ARGV[5] now, Unix ms
-- ARGV[6] actor   ARGV[7] note
-- ARGV[8] source user id   ARGV[9] its project name
-- ARGV[10] destination user id   ARGV[11] its project name
--
-- Answers {0, source awarded, destination awarded} after the move,
-- {1, source awarded} when it lacks the amount, {2, destination awarded}
-- when the destination would pass the bound, {-1, 1 or 2} when that user's
-- balances are not loaded, {-7, 1 or 2} when that user was deleted (its
-- hash is a tombstone). Everything is read and checked before the first
-- write: Redis does not roll a script back.

local a = redis.call('HMGET', KEYS[1], 'aw', 'n', 'p', 'del')
local b = redis.call('HMGET', KEYS[2], 'aw', 'n', 'p', 'del')
if a[4] then return {-7, 1} end
if b[4] then return {-7, 2} end
if not a[1] or not a[2] then return {-1, 1} end
if not b[1] or not b[2] then return {-1, 2} end
local amount = tonumber(ARGV[1])
local from, to = tonumber(a[1]), tonumber(b[1])
if from < amount then return {1, from} end
if to + amount > tonumber(ARGV[2]) then return {2, to} end

redis.call('HSET', KEYS[1], 'aw', from - amount)
redis.call('HSET', KEYS[2], 'aw', to + amount)
redis.call('XADD', KEYS[3], '*', 'id', ARGV[3], 'k', 'transfer', 't', ARGV[5],
  'u', ARGV[8], 'un', a[2], 'p', a[3] or 0, 'pn', ARGV[9], 'aw', 0 - amount, 'ac', ARGV[6], 'no', ARGV[7])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[4], 'k', 'transfer', 't', ARGV[5],
  'u', ARGV[10], 'un', b[2], 'p', b[3] or 0, 'pn', ARGV[11], 'aw', amount, 'ac', ARGV[6], 'no', ARGV[7])
return {0, from - amount, to + amount}
