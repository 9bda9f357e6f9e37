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
-- ARGV[6] "1": the project changed (see Moves below)
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
-- ARGV[12] id of the project before the change, as Postgres has it
-- ARGV[13] its name (recorded on the park event)
-- ARGV[14] number C of config field/value pairs that follow (load.lua's)
--
-- Moves. The user hash's field 'x' holds what the user left in each
-- project it moved out of: entries "<project id>:<allowance>:<allowance
-- period start>:<pool drawn>" separated by ',' ('' for none; Postgres:
-- parked_allowances). Leaving a project parks the user's allowance, period
-- and pool draw there (a 'park' event). Entering a project takes its entry
-- back (a 'resume' event): within the same period (the entry's period
-- start is not before the project's current one, or the project has no
-- period) the user resumes that allowance and pool draw where it left
-- them; if the period rolled meanwhile it starts fresh, as the refill it
-- would have had; a project the user never left starts with its full
-- allowance and nothing drawn, as before. So each project gives its
-- allowance once per period, and no sequence of moves creates credits.
-- The values parked are the stored ones, even when a refill is due: such
-- an entry's period start is older than the project's current period, so
-- coming back gets the refill then.
--
-- Answers {0, d_allowance, d_pool_used, allowance_period, grant_month,
--          grant_paid, config_event (0/1), config_event_has_grant_month,
--          parked project id (0: nothing parked), parked allowance,
--          parked period start, parked pool drawn, resumed (0/1),
--          resumed allowance, resumed pool drawn,
--          config_event_has_allowance_period}
--   3 rename refused (unreconciled usage)
--   4 rename refused for now: the stream backlog is too long to scan
--  -1 user not loaded
--  -2 Redis holds a newer config version    -4 project not loaded
--
-- The allowance period only ever moves forward (max of old and new start):
-- the ledger applies it with greatest(), and a start later than the new
-- project's current one still refills at the new project's next boundary.

local MAX = 9007199254740991
local u = redis.call('HMGET', KEYS[1], 'v', 'a', 'ap', 'pu', 'pr', 'mg', 'gm', 'pt', 'p', 'x')
-- Without 'pt' the hash predates partner-dependent grants: load it again.
if not u[1] or not u[2] or not u[8] then return {-1} end
if tonumber(u[1]) > tonumber(ARGV[1]) then return {-2} end
local uid = ARGV[10]

local c = tonumber(ARGV[14])
local last = 14 + 2 * c
local cfg = {}
for i = 15, last, 2 do cfg[ARGV[i]] = ARGV[i + 1] end
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
-- Where the user was, as Redis has it. Already in the new project means an
-- earlier attempt of this move wrote Redis but its Postgres transaction
-- did not commit: its balance changes are not made twice.
local from = u[9] or '0'
local reassign = ARGV[6] == '1' and from ~= pid
local x = u[10] or ''
local nx = x
local parked, resumed = false, nil
if reassign then
  local keep = {}
  for e, ea, eap, epu in string.gmatch(x, '(%d+):(%-?%d+):(%-?%d+):(%-?%d+)') do
    if e == pid then
      resumed = {tonumber(ea), tonumber(eap), tonumber(epu)}
    else
      keep[#keep + 1] = e .. ':' .. ea .. ':' .. eap .. ':' .. epu
    end
  end
  if from ~= '0' then
    keep[#keep + 1] = string.format('%s:%d:%d:%d', from, alw, ap, pu)
    parked = true
  end
  nx = table.concat(keep, ',')
  na, npu = 0, 0
  if pid ~= '0' then
    local ps = tonumber(ARGV[7])
    if resumed and (per == 'none' or resumed[2] >= ps) then
      na, npu = resumed[1], resumed[3]
    elseif per ~= 'none' then
      na = amt
    end
    if per ~= 'none' and ps > nap then nap = ps end
  end
end

-- A grant runs while the user is a partner with a monthly grant: the same
-- rule as prelude.lua's due_grant, on the schedule and in the zone before this change.
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
redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 15, last))
redis.call('HSET', KEYS[1], 'a', na, 'ap', nap, 'pu', npu, 'pr', pr + grant, 'gm', ngm, 'x', nx)

local t = ARGV[2]
-- An event of this user; amounts of 0 are left out, as the money scripts do
-- (not a period start: a parked entry always has one).
local function append(id, kind, p, pn, fields)
  local f = {'id', id, 'k', kind, 't', t, 'u', uid, 'un', uname, 'p', p, 'pn', pn}
  for i = 1, #fields, 2 do
    if fields[i + 1] ~= 0 or fields[i] == 'ap' then
      f[#f + 1] = fields[i]
      f[#f + 1] = fields[i + 1]
    end
  end
  redis.call('XADD', KEYS[3], '*', unpack(f))
end
if grant > 0 then
  append(ARGV[3] .. ':g', 'grant', pid, pname, {'pr', grant, 'gm', ngm})
end
if parked then
  local fpn = ''
  if from == ARGV[12] then fpn = ARGV[13] end
  append(ARGV[3] .. ':park', 'park', from, fpn, {'a', alw, 'pu', pu, 'ap', ap})
end
if resumed then
  append(ARGV[3] .. ':resume', 'resume', pid, pname, {'a', 0 - resumed[1], 'pu', 0 - resumed[3]})
end
local config_event, with_gm, with_ap = 0, 0, 0
if reassign or (grant == 0 and ngm ~= gm) then
  config_event = 1
  local ev = {'XADD', KEYS[3], '*', 'id', ARGV[3], 'k', 'config', 't', t,
    'u', uid, 'un', uname, 'p', pid, 'pn', pname, 'a', na - alw, 'pu', npu - pu, 'ac', ARGV[4]}
  if reassign then
    with_ap = 1
    table.insert(ev, 'ap'); table.insert(ev, nap)
  end
  if grant == 0 and ngm ~= gm then
    with_gm = 1
    table.insert(ev, 'gm'); table.insert(ev, ngm)
  end
  redis.call(unpack(ev))
end
local park_pid, res_flag, res_a, res_pu = 0, 0, 0, 0
if parked then park_pid = tonumber(from) end
if resumed then res_flag, res_a, res_pu = 1, resumed[1], resumed[3] end
return {0, na - alw, npu - pu, nap, ngm, grant, config_event, with_gm,
  park_pid, alw, ap, pu, res_flag, res_a, res_pu, with_ap}
