-- refresh.lua: write a user's due refill and monthly grant, with their
-- events, and charge nothing: what a charge would write before taking
-- anything (RefreshProject, the admin API's project "settle").
-- Joined after prelude.lua (refreshScript in refresh_script.go).
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- KEYS[3] event stream
-- ARGV[1] now, Unix ms   ARGV[2] start of the project's current allowance
-- period, Unix seconds   ARGV[3] current month index (year*12+month-1)
-- ARGV[4] event id (the refill's is it with ':r', the grant's with ':g')
-- ARGV[5] user id (as in KEYS[1])
--
-- Answers {0, refilled 1|0, allowance delta, pool-used delta, period
-- start, grant paid, month}, or a status alone: -1 user not in Redis,
-- -4 project not in Redis, -7 user deleted.

local u = redis.call('HMGET', KEYS[1], 'v', 'p', 'n', 'a', 'ap', 'pu', 'pr',
  'mg', 'gm', 'del', 'pt')
if u[10] then return {-7} end
if not u[4] or not u[1] or not u[11] then return {-1} end

local pid = u[2]
local alw, ap, pu = tonumber(u[4]), tonumber(u[5]), tonumber(u[6])
local pr, gm = tonumber(u[7]), tonumber(u[9])

local amt, per, pname = 0, 'none', ''
if pid ~= '0' then
  local p = redis.call('HMGET', KEYS[2], 'v', 'n', 'amt', 'per', 'pb')
  if not p[1] or not p[5] then return {-4} end
  pname, amt, per = p[2], tonumber(p[3]), p[4]
end

local pstart = tonumber(ARGV[2])
local refilled = due_refill(pid, per, ap, pstart)
local refill_a, refill_pu = 0, 0
if refilled then refill_a, refill_pu = amt - alw, 0 - pu end
local month = tonumber(ARGV[3])
local granted, grant = due_grant(u[11], tonumber(u[8]), gm, month, pr)

local h = {}
if refilled then
  if amt ~= alw then h[#h + 1] = 'a'; h[#h + 1] = amt end
  h[#h + 1] = 'ap'; h[#h + 1] = pstart
  if pu ~= 0 then h[#h + 1] = 'pu'; h[#h + 1] = 0 end
end
if grant > 0 then h[#h + 1] = 'pr'; h[#h + 1] = pr + grant end
if granted then h[#h + 1] = 'gm'; h[#h + 1] = month end
if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
append_due_events(KEYS[3], ARGV[4], ARGV[1], ARGV[5], u[3], pid, pname,
  refilled, refill_a, refill_pu, pstart, grant, month)

local r = 0
if refilled then r = 1 end
return {0, r, refill_a, refill_pu, pstart, grant, month}
