-- fixed_charge.lua: a fixed-cost charge: check the key, bring the
-- balances up to date (refill, monthly grant) and take the cost through
-- the waterfall allowance → pool → awarded → purchased, all or nothing,
-- appending the usage event.
--
-- Two scripts are built from this file (fixed_charge.go), each with its
-- own fixed layout; Go joins prelude.lua and a constant TRACKED before it:
--   fixed charge (TRACKED false): final at admission, nothing recorded in
--     flight (deleting the user meanwhile is harmless). fixedChargeArgs.
--   tracked charge (TRACKED true): the same, and the request recorded in
--     flight, so the user cannot be deleted under it and a charge whose
--     answer the gateway lost can be undone (cancel_charge.lua).
--     trackedChargeArgs.
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- KEYS[3] event stream
-- ARGV[1] key hash the caller holds   ARGV[2] user version it cached
-- ARGV[3] project version it cached   ARGV[4] now, Unix ms
-- ARGV[5] start of the project's current allowance period, Unix seconds
-- ARGV[6] current month index (year*12+month-1)   ARGV[7] cost, micro-credits
-- ARGV[8] event id   ARGV[9] request label   ARGV[10] user id
-- Tracked only:
-- KEYS[4] the user's in-flight set   KEYS[5] the charge's record key
--         {p}:r:<event id>: it must not exist; cancel_charge.lua creates
--         it as a marker when it finds the charge has not run, so a
--         cancelled charge can never run afterwards
-- ARGV[11] lease deadline, Unix ms: the member
--          "<event id>|<project id>|<allowance period>|<a>|<p>|<w>|<r>"
--          (what was taken from each bucket; flightMember in Go) counts
--          as in flight until release.lua removes it or the deadline passes
--
-- Answers {0, effective after, allowance, pool, awarded, purchased} taken
-- (tracked: and the allowance period), {1, effective} insufficient
-- (nothing taken), or a status alone: -1 user not in Redis (load it),
-- -2 caller's cache stale, -3 key refused, -4 project not in Redis,
-- -6 cancelled (tracked: the record exists), -7 user deleted.
--
-- Every check and read happens before the first write: Redis does not
-- roll back a script that fails half way.

local u = redis.call('HMGET', KEYS[1], 'kh', 'v', 'st', 'exp', 'p', 'n',
  'a', 'ap', 'pu', 'aw', 'pr', 'mg', 'gm', 'del', 'pt')
if u[14] then return {-7} end
if not u[7] or not u[2] or not u[15] then return {-1} end
if u[1] ~= ARGV[1] or u[2] ~= ARGV[2] then return {-2} end
if u[3] ~= '1' then return {-3} end
local now = tonumber(ARGV[4])
local exp = tonumber(u[4])
if exp > 0 and now >= exp then return {-3} end
if TRACKED and redis.call('EXISTS', KEYS[5]) == 1 then return {-6} end

local pid = u[5]
local alw, ap, pu = tonumber(u[7]), tonumber(u[8]), tonumber(u[9])
local aw, pr, gm = tonumber(u[10]), tonumber(u[11]), tonumber(u[13])

local per, pool_on, pb, pl, amt, pname = 'none', false, 0, -1, 0, ''
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
  alw, pu = amt, 0
end
local month = tonumber(ARGV[6])
local granted, grant = due_grant(u[15], tonumber(u[12]), gm, month, pr)
if granted then pr = pr + grant end

local pool = pool_available(pool_on, pb, pl, pu)
local reach = capped(alw + pool + aw + pr)
local cost = tonumber(ARGV[7])
if cost > reach then return {1, reach} end

-- The waterfall, all four buckets in their usual order.
local ta, tp, tw, tr = cost, 0, 0, 0
if ta > alw then ta = alw end
local rest = cost - ta
if rest > 0 then
  tp = rest; if tp > pool then tp = pool end
  rest = rest - tp
  tw = rest; if tw > aw then tw = aw end
  tr = rest - tw
end

-- Writing: only the fields that changed (each argument costs a
-- conversion), events without zero amounts or empty texts.
local h, n = {}, 0
if refilled or ta > 0 then h[1], h[2], n = 'a', alw - ta, 2 end
if refilled then h[n + 1], h[n + 2], n = 'ap', pstart, n + 2 end
if refilled or tp > 0 then h[n + 1], h[n + 2], n = 'pu', pu + tp, n + 2 end
if tw > 0 then h[n + 1], h[n + 2], n = 'aw', aw - tw, n + 2 end
if grant > 0 or tr > 0 then h[n + 1], h[n + 2], n = 'pr', pr - tr, n + 2 end
if granted then h[n + 1], h[n + 2], n = 'gm', month, n + 2 end
if n > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
if tp > 0 then redis.call('HINCRBY', KEYS[2], 'pb', 0 - tp) end

local id, t, uid, uname = ARGV[8], ARGV[4], ARGV[10], u[6]
if refilled then
  local f = {'id', id .. ':r', 'k', 'refill', 't', t, 'u', uid, 'un', uname,
    'p', pid, 'pn', pname, 'ap', pstart}
  if refill_a ~= 0 then f[#f + 1] = 'a'; f[#f + 1] = refill_a end
  if refill_pu ~= 0 then f[#f + 1] = 'pu'; f[#f + 1] = refill_pu end
  redis.call('XADD', KEYS[3], '*', unpack(f))
end
if grant > 0 then
  local f = {'id', id .. ':g', 'k', 'grant', 't', t, 'u', uid, 'un', uname,
    'pr', grant, 'gm', month}
  if pid ~= '0' then f[#f + 1] = 'p'; f[#f + 1] = pid; f[#f + 1] = 'pn'; f[#f + 1] = pname end
  redis.call('XADD', KEYS[3], '*', unpack(f))
end
local f = {'id', id, 'k', 'usage', 't', t, 'u', uid, 'un', uname}
local m = 10
if pid ~= '0' then f[11], f[12], f[13], f[14], m = 'p', pid, 'pn', pname, 14 end
if cost ~= 0 then f[m + 1], f[m + 2], m = 'c', cost, m + 2 end
if ta ~= 0 then f[m + 1], f[m + 2], m = 'a', 0 - ta, m + 2 end
if tp ~= 0 then f[m + 1], f[m + 2], f[m + 3], f[m + 4], m = 'pl', 0 - tp, 'pu', tp, m + 4 end
if tw ~= 0 then f[m + 1], f[m + 2], m = 'aw', 0 - tw, m + 2 end
if tr ~= 0 then f[m + 1], f[m + 2], m = 'pr', 0 - tr, m + 2 end
if ARGV[9] ~= '' then f[m + 1], f[m + 2] = 'rq', ARGV[9] end
redis.call('XADD', KEYS[3], '*', unpack(f))
if TRACKED then
  -- An admin deleting the user refuses while this member's lease is
  -- alive (delete_user.lua reads the same set).
  if refilled then ap = pstart end
  redis.call('ZADD', KEYS[4], ARGV[11], string.format('%s|%s|%d|%d|%d|%d|%d', id, pid, ap, ta, tp, tw, tr))
  return {0, reach - cost, ta, tp, tw, tr, ap}
end
return {0, reach - cost, ta, tp, tw, tr}
