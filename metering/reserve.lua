-- reserve.lua: a variable-cost reservation. Checks the key as a fixed
-- charge does, brings the balances up to date (refill, monthly grant),
-- takes the estimate through the buckets the route allows, in its order,
-- all or nothing, and records it: a 'hold' event, the reservation hash,
-- and its lease in the deployment's lease set and the user's in-flight
-- set. settle.lua finishes it; the sweeper settles it when the lease ends.
-- Joined after prelude.lua (reserveScript in reserve_script.go).
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- KEYS[3] event stream   KEYS[4] the user's in-flight set
-- KEYS[5] reservation hash {p}:r:<event id>: must not exist
--         (cancel_reserve.lua leaves a marker there when it finds the
--         reservation has not run, so a cancelled one never runs later)
-- KEYS[6] the deployment's lease set   KEYS[7] price version key
-- ARGV[1] key hash the caller holds   ARGV[2] user version it cached
-- ARGV[3] project version it cached   ARGV[4] now, Unix ms
-- ARGV[5] start of the project's current allowance period, Unix seconds
-- ARGV[6] current month index (year*12+month-1)
-- ARGV[7] amount to reserve, micro-credits   ARGV[8] event id (the hold's,
--         and the reservation's name)   ARGV[9] request label   ARGV[10] user id
-- ARGV[11] lease deadline, Unix ms
-- ARGV[12] bucket order: each of a(llowance) p(ool) w (awarded)
--          r (purchased) at most once
-- ARGV[13] price version the estimate used ("" for a fixed amount: no check)
-- ARGV[14] model ("" none)
-- ARGV[15] end of the current allowance period, Unix ms (0: no period)
--
-- Answers {0, effective of the allowed buckets after, allowance, pool,
-- awarded, purchased} taken, {1, effective of the allowed buckets}
-- insufficient (nothing taken), or a status alone: -1 user not in Redis,
-- -2 caller's cache stale, -3 key refused, -4 project not in Redis,
-- -5 price version changed since the estimate, -6 cancelled (KEYS[5]
-- exists), -7 user deleted. A bucket order with another letter or a
-- repeated one is an error reply (the caller's bug), before any write.

local u = redis.call('HMGET', KEYS[1], 'kh', 'v', 'st', 'exp', 'p', 'n',
  'a', 'ap', 'pu', 'aw', 'pr', 'mg', 'gm', 'del', 'pt')
if u[14] then return {-7} end
if not u[7] or not u[2] or not u[15] then return {-1} end
if u[1] ~= ARGV[1] or u[2] ~= ARGV[2] then return {-2} end
if u[3] ~= '1' then return {-3} end
local exp = tonumber(u[4])
if exp > 0 and tonumber(ARGV[4]) >= exp then return {-3} end
if redis.call('EXISTS', KEYS[5]) == 1 then return {-6} end
-- A missing version reads as 0, as the gateway's price table does.
if ARGV[13] ~= '' and (redis.call('GET', KEYS[7]) or '0') ~= ARGV[13] then return {-5} end

local pid = u[5]
local alw, ap, pu = tonumber(u[7]), tonumber(u[8]), tonumber(u[9])
local aw, pr, gm = tonumber(u[10]), tonumber(u[11]), tonumber(u[13])
local alw0, ap0, pu0, aw0, pr0, gm0 = alw, ap, pu, aw, pr, gm

local amt, per, pool_on, pb, pl, pname = 0, 'none', false, 0, -1, ''
if pid ~= '0' then
  local p = redis.call('HMGET', KEYS[2], 'v', 'n', 'amt', 'per', 'pe', 'pb', 'pl')
  if not p[1] or not p[6] then return {-4} end
  if p[1] ~= ARGV[3] then return {-2} end
  pname, amt, per = p[2], tonumber(p[3]), p[4]
  pool_on, pb, pl = p[5] == '1', tonumber(p[6]), tonumber(p[7])
end

local pstart = tonumber(ARGV[5])
local refilled = due_refill(pid, per, ap, pstart)
local refill_a, refill_pu = 0, 0
if refilled then
  refill_a, refill_pu = amt - alw, 0 - pu
  alw, pu, ap = amt, 0, pstart
end
local month = tonumber(ARGV[6])
local granted, grant = due_grant(u[15], tonumber(u[12]), gm, month, pr)
if granted then pr, gm = pr + grant, month end

-- The waterfall through the allowed buckets, in the route's order
-- (letters compared as bytes, no tables: this is a per-request path).
local order = ARGV[12]
local pool = pool_available(pool_on, pb, pl, pu)
local ha, hp, hw, hr = false, false, false, false
local reach = 0
for i = 1, #order do
  local b = string.byte(order, i)
  if b == 97 and not ha then ha, reach = true, reach + alw
  elseif b == 112 and not hp then hp, reach = true, reach + pool
  elseif b == 119 and not hw then hw, reach = true, reach + aw
  elseif b == 114 and not hr then hr, reach = true, reach + pr
  else return redis.error_reply('reserve.lua: bad bucket order ' .. order) end
end
reach = capped(reach)
local amount = tonumber(ARGV[7])
if amount > reach then return {1, reach} end
local ta, tp, tw, tr, rest = 0, 0, 0, 0, amount
for i = 1, #order do
  if rest == 0 then break end
  local b = string.byte(order, i)
  if b == 97 then ta = rest; if ta > alw then ta = alw end; rest = rest - ta
  elseif b == 112 then tp = rest; if tp > pool then tp = pool end; rest = rest - tp
  elseif b == 119 then tw = rest; if tw > aw then tw = aw end; rest = rest - tw
  else tr = rest; if tr > pr then tr = pr end; rest = rest - tr end
end

-- Writing: only the user fields that changed (each argument costs a
-- conversion), events without zero amounts or empty texts.
local h, n = {}, 0
if alw - ta ~= alw0 then h[1], h[2], n = 'a', alw - ta, 2 end
if ap ~= ap0 then h[n + 1], h[n + 2], n = 'ap', ap, n + 2 end
if pu + tp ~= pu0 then h[n + 1], h[n + 2], n = 'pu', pu + tp, n + 2 end
if aw - tw ~= aw0 then h[n + 1], h[n + 2], n = 'aw', aw - tw, n + 2 end
if pr - tr ~= pr0 then h[n + 1], h[n + 2], n = 'pr', pr - tr, n + 2 end
if gm ~= gm0 then h[n + 1], h[n + 2], n = 'gm', gm, n + 2 end
if n > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
if tp > 0 then redis.call('HINCRBY', KEYS[2], 'pb', 0 - tp) end

local id, t, uid, uname = ARGV[8], ARGV[4], ARGV[10], u[6]
if refilled or grant > 0 then
  append_due_events(KEYS[3], id, t, uid, uname, pid, pname,
    refilled, refill_a, refill_pu, pstart, grant, month)
end
-- The hold, and the record of what settle.lua needs to refund, take an
-- overrun or forfeit without trusting the caller: who, from where, and
-- the allowance period the allowance part belongs to.
local f = {'id', id, 'k', 'hold', 't', t, 'u', uid, 'un', uname}
local m = 10
if pid ~= '0' then f[11], f[12], f[13], f[14], m = 'p', pid, 'pn', pname, 14 end
if ta ~= 0 then f[m + 1], f[m + 2], m = 'a', 0 - ta, m + 2 end
if tp ~= 0 then f[m + 1], f[m + 2], f[m + 3], f[m + 4], m = 'pl', 0 - tp, 'pu', tp, m + 4 end
if tw ~= 0 then f[m + 1], f[m + 2], m = 'aw', 0 - tw, m + 2 end
if tr ~= 0 then f[m + 1], f[m + 2], m = 'pr', 0 - tr, m + 2 end
if amount ~= 0 then f[m + 1], f[m + 2], m = 'rs', amount, m + 2 end
if ARGV[14] ~= '' then f[m + 1], f[m + 2], m = 'm', ARGV[14], m + 2 end
if ARGV[9] ~= '' then f[m + 1], f[m + 2] = 'rq', ARGV[9] end
redis.call('XADD', KEYS[3], '*', unpack(f))
redis.call('HSET', KEYS[5], 'u', uid, 'p', pid, 'un', uname, 'pn', pname,
  'ap', ap, 'ae', ARGV[15], 'o', order, 'rs', amount, 'a', ta, 'pl', tp,
  'w', tw, 'r', tr, 'm', ARGV[14], 'rq', ARGV[9])
redis.call('ZADD', KEYS[6], ARGV[11], id)
redis.call('ZADD', KEYS[4], ARGV[11], id)
return {0, reach - amount, ta, tp, tw, tr}
