-- peek.lua: a user's balances as of now, with the due refill and monthly
-- grant applied in the answer only: it writes nothing, so listing users
-- never races a charge, and refills still happen once, at the next change.
-- Joined after prelude.lua (peekScript in peek_script.go).
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- ARGV[1] start of the project's current allowance period, Unix seconds
-- ARGV[2] current month index (year*12+month-1)
--
-- Answers {0, effective, allowance, pool available, awarded, purchased,
-- pool balance, pool used, grant month after due grants}, or a status
-- alone: -1 user not in Redis, -4 project not in Redis, -7 user deleted.

local u = redis.call('HMGET', KEYS[1], 'v', 'p', 'a', 'ap', 'pu', 'aw', 'pr',
  'mg', 'gm', 'del', 'pt')
if u[10] then return {-7} end
if not u[3] or not u[1] or not u[11] then return {-1} end

local pid = u[2]
local alw, ap, pu = tonumber(u[3]), tonumber(u[4]), tonumber(u[5])
local aw, pr, gm = tonumber(u[6]), tonumber(u[7]), tonumber(u[9])

local amt, per, pool_on, pb, pl = 0, 'none', false, 0, -1
if pid ~= '0' then
  local p = redis.call('HMGET', KEYS[2], 'v', 'amt', 'per', 'pe', 'pb', 'pl')
  if not p[1] or not p[5] then return {-4} end
  amt, per = tonumber(p[2]), p[3]
  pool_on, pb, pl = p[4] == '1', tonumber(p[5]), tonumber(p[6])
end

if due_refill(pid, per, ap, tonumber(ARGV[1])) then alw, pu = amt, 0 end
local month = tonumber(ARGV[2])
local granted, grant = due_grant(u[11], tonumber(u[8]), gm, month, pr)
if granted then pr, gm = pr + grant, month end

local pool = pool_available(pool_on, pb, pl, pu)
return {0, capped(alw + pool + aw + pr), alw, pool, aw, pr, pb, pu, gm}
