-- adjust_user.lua: an admin's signed change of a user's awarded or
-- purchased balance, after the due refill and monthly grant (written
-- with their events, as a charge would), with the change's own event.
-- A project's pool is adjust_pool.lua's. Joined after prelude.lua
-- (adjustUserScript in adjust_user_script.go).
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- KEYS[3] event stream
-- ARGV[1] now, Unix ms   ARGV[2] start of the project's current allowance
-- period, Unix seconds   ARGV[3] current month index (year*12+month-1)
-- ARGV[4] delta, signed micro-credits   ARGV[5] event id   ARGV[6] user id
-- ARGV[7] bucket field: 'aw' (awarded) or 'pr' (purchased)
-- ARGV[8] event kind   ARGV[9] actor   ARGV[10] note ("" none)
--
-- Answers {0, new bucket balance}, {1, bucket balance} when the change
-- would take it below zero, {2, bucket balance} above the maximum
-- (nothing written then), or a status alone: -1 user not in Redis, -4
-- project not in Redis, -7 user deleted. Another bucket field is an
-- error reply (the caller's bug), before any write.

local field = ARGV[7]
if field ~= 'aw' and field ~= 'pr' then
  return redis.error_reply('adjust_user.lua: bad bucket field ' .. field)
end
local u = redis.call('HMGET', KEYS[1], 'v', 'p', 'n', 'a', 'ap', 'pu', 'aw',
  'pr', 'mg', 'gm', 'del', 'pt')
if u[11] then return {-7} end
if not u[4] or not u[1] or not u[12] then return {-1} end

local pid = u[2]
local alw, ap, pu = tonumber(u[4]), tonumber(u[5]), tonumber(u[6])
local aw, pr, gm = tonumber(u[7]), tonumber(u[8]), tonumber(u[10])

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
local granted, grant = due_grant(u[12], tonumber(u[9]), gm, month, pr)
if granted then pr = pr + grant end

local delta = tonumber(ARGV[4])
local bal = aw
if field == 'pr' then bal = pr end
local new = bal + delta
if new < 0 then return {1, bal} end
if new > MAX then return {2, bal} end

local h = {}
if refilled then
  if amt ~= alw then h[#h + 1] = 'a'; h[#h + 1] = amt end
  h[#h + 1] = 'ap'; h[#h + 1] = pstart
  if pu ~= 0 then h[#h + 1] = 'pu'; h[#h + 1] = 0 end
end
if field == 'aw' then
  h[#h + 1] = 'aw'; h[#h + 1] = new
  if grant > 0 then h[#h + 1] = 'pr'; h[#h + 1] = pr end
else
  h[#h + 1] = 'pr'; h[#h + 1] = new
end
if granted then h[#h + 1] = 'gm'; h[#h + 1] = month end
redis.call('HSET', KEYS[1], unpack(h))

local id, t, uid, uname = ARGV[5], ARGV[1], ARGV[6], u[3]
append_due_events(KEYS[3], id, t, uid, uname, pid, pname,
  refilled, refill_a, refill_pu, pstart, grant, month)
append_event(KEYS[3], event_head(id, ARGV[8], t, uid, uname, pid, pname),
  {field, delta, 'ac', ARGV[9], 'no', ARGV[10]})
return {0, new}
