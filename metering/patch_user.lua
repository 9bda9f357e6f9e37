-- patch_user.lua: write a user's changed configuration into Redis together
-- with the balance changes it implies, in one atomic step, appending an
-- event for every balance field it moves.
--
-- KEYS[1] user hash   KEYS[2] hash of the user's (new) project, ignored for
-- project id 0   KEYS[3] event stream
-- ARGV[1] config version (the patching transaction's)
-- ARGV[2] now, Unix ms   ARGV[3] event id   ARGV[4] actor
-- ARGV[5] "1": a rename; refuse while the stream holds a usage event of
--         this user not yet in Postgres (Postgres's own history is checked
--         by the caller, who holds the user row locked so the reconciler
--         cannot move events out of the stream meanwhile)
-- ARGV[6] "1": the project changed; the user starts the new project with
--         its full allowance and no pool drawn this period
-- ARGV[7] start of the new project's allowance period, Unix seconds
-- ARGV[8] current month index (year*12+month-1) in the time zone of the
--         user's project after the change (UTC for none)
-- ARGV[9] "1": the grant schedule changed (monthly grant or partner flag):
--         grants due under the old schedule are paid first, then the
--         current month counts as settled, so the new schedule pays from
--         the next 1st (a grant switched on mid-month starts on the 1st
--         after, a grant switched off pays nothing more)
-- ARGV[10] user id
-- ARGV[11] current month index in the time zone of the project before the
--         change: a move or a schedule change first pays the grants due
--         there, so a grant the admin saw due is never taken back by a
--         move to a zone where that month has not begun
-- ARGV[12] number C of config field/value pairs that follow (load.lua's)
--
-- Answers {0, d_allowance, d_pool_used, allowance_period, grant_month,
--          grant_paid, config_event (0/1), config_event_has_grant_month}
--   3 rename refused (unreconciled usage)
--   4 rename refused for now: the stream backlog is too long to scan
--  -1 user not loaded
--  -2 Redis holds a newer config version    -4 project not loaded
--
-- The allowance period only ever moves forward (max of old and new start):
-- the ledger applies it with greatest(), and a start later than the new
-- project's current one still refills at the new project's next boundary.

local MAX = 9007199254740991
local u = redis.call('HMGET', KEYS[1], 'v', 'a', 'ap', 'pu', 'pr', 'mg', 'gm', 'pt')
-- Without 'pt' the hash predates partner-dependent grants: load it again.
if not u[1] or not u[2] or not u[8] then return {-1} end
if tonumber(u[1]) > tonumber(ARGV[1]) then return {-2} end
local uid = ARGV[10]

local c = tonumber(ARGV[12])
local last = 12 + 2 * c
local cfg = {}
for i = 13, last, 2 do cfg[ARGV[i]] = ARGV[i + 1] end
local pid, uname = cfg['p'], cfg['n']

if ARGV[5] == '1' then
  -- The stream holds only what the reconciler has not yet trimmed, normally
  -- seconds of traffic. After a long Postgres outage it can be huge; rather
  -- than block Redis scanning it, refuse until the ledger catches up.
  if redis.call('XLEN', KEYS[3]) > 100000 then return {4} end
  local start = '-'
  repeat
    local batch = redis.call('XRANGE', KEYS[3], start, '+', 'COUNT', 1000)
    for _, entry in ipairs(batch) do
      local f, kind, who = entry[2], nil, nil
      for i = 1, #f, 2 do
        if f[i] == 'k' then kind = f[i + 1] elseif f[i] == 'u' then who = f[i + 1] end
      end
      if (kind == 'usage' or kind == 'hold') and who == uid then return {3} end
    end
    if #batch < 1000 then break end
    start = '(' .. batch[#batch][1]
  until false
end

local pname, amt, per = '', 0, 'none'
if pid ~= '0' then
  local p = redis.call('HMGET', KEYS[2], 'v', 'n', 'amt', 'per')
  if not p[1] then return {-4} end
  pname, amt, per = p[2], tonumber(p[3]), p[4]
end

local alw, ap, pu = tonumber(u[2]), tonumber(u[3]), tonumber(u[4])
local pr, omg, gm = tonumber(u[5]), tonumber(u[6]), tonumber(u[7])
local na, nap, npu = alw, ap, pu
local reassign = ARGV[6] == '1'
if reassign then
  na, npu = 0, 0
  if pid ~= '0' and per ~= 'none' then
    na = amt
    local ps = tonumber(ARGV[7])
    if ps > nap then nap = ps end
  end
end

-- A grant runs while the user is a partner with a monthly grant: the same
-- rule as charge.lua's, on the schedule and in the zone before this change.
local month, old_month = tonumber(ARGV[8]), tonumber(ARGV[11])
local schedule = ARGV[9] == '1'
local grant, ngm = 0, gm
if (schedule or reassign) and u[8] == '1' and omg > 0 and gm < old_month then
  local months = old_month - gm
  if gm <= 0 then months = 1 end
  grant = omg * months
  if pr + grant > MAX then grant = MAX - pr end
  ngm = old_month
end
-- Paid up to this month, or owed nothing for it: the new schedule's first
-- grant is on the next 1st. 'gm' never goes back (a month paid in a zone
-- ahead of the new one stays paid).
if schedule and ngm < month then ngm = month end

-- All checks done; writes from here on.
redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 13, last))
redis.call('HSET', KEYS[1], 'a', na, 'ap', nap, 'pu', npu, 'pr', pr + grant, 'gm', ngm)

local t = ARGV[2]
if grant > 0 then
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[3] .. ':g', 'k', 'grant', 't', t,
    'u', uid, 'un', uname, 'p', pid, 'pn', pname, 'pr', grant, 'gm', ngm)
end
local config_event, with_gm = 0, 0
if reassign or (grant == 0 and ngm ~= gm) then
  config_event = 1
  local ev = {'XADD', KEYS[3], '*', 'id', ARGV[3], 'k', 'config', 't', t,
    'u', uid, 'un', uname, 'p', pid, 'pn', pname, 'a', na - alw, 'pu', npu - pu, 'ac', ARGV[4]}
  if reassign then
    table.insert(ev, 'ap'); table.insert(ev, nap)
  end
  if grant == 0 and ngm ~= gm then
    with_gm = 1
    table.insert(ev, 'gm'); table.insert(ev, ngm)
  end
  redis.call(unpack(ev))
end
return {0, na - alw, npu - pu, nap, ngm, grant, config_event, with_gm}
