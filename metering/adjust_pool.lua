-- adjust_pool.lua: add a signed delta to a project's pool and append its event.
-- (User balances are adjusted by adjust_user.lua, which first applies due
-- refills and grants.)
--
-- KEYS[1] project hash   KEYS[2] event stream
-- ARGV[1] field ("pb" pool balance)
-- ARGV[2] delta, micro-credits   ARGV[3] upper bound for the new balance
-- ARGV[4] event id   ARGV[5] kind   ARGV[6] now, Unix ms
-- ARGV[7] user id ("" for a pool)   ARGV[8] username   ARGV[9] project id
-- ARGV[10] project name   ARGV[11] actor   ARGV[12] note
--
-- Answers {0, new_balance}, {1, balance} when it would go below zero,
-- {2, balance} above the bound, {-1} when the hash is not loaded.

local field = ARGV[1]
local bal = redis.call('HGET', KEYS[1], field)
if not bal then return {-1} end
bal = tonumber(bal)
local delta = tonumber(ARGV[2])
local new = bal + delta
if new < 0 then return {1, bal} end
if new > tonumber(ARGV[3]) then return {2, bal} end
redis.call('HSET', KEYS[1], field, new)

redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'k', ARGV[5], 't', ARGV[6],
  'u', ARGV[7], 'un', ARGV[8], 'p', ARGV[9], 'pn', ARGV[10],
  'pl', delta, 'ac', ARGV[11], 'no', ARGV[12])
return {0, new}
