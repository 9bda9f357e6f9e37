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

local record = nil
if TRACKED then record = KEYS[5] end
local status, s = charge_position(KEYS[1], KEYS[2], record, ARGV[1], ARGV[2], ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
if status then return {status} end
local cost = tonumber(ARGV[7])
if cost > s.reach then return {1, s.reach} end

local ta, tp, tw, tr = take_in_order(s, cost)
save_taken(KEYS[1], KEYS[2], s, ta, tp, tw, tr)
local id, t, uid = ARGV[8], ARGV[4], ARGV[10]
append_due_events(KEYS[3], id, t, uid, s.uname, s.pid, s.pname,
  s.refilled, s.refill_a, s.refill_pu, s.pstart, s.grant, s.month)
append_event(KEYS[3], event_head(id, 'usage', t, uid, s.uname, s.pid, s.pname),
  {'c', cost, 'a', 0 - ta, 'pl', 0 - tp, 'pu', tp, 'aw', 0 - tw, 'pr', 0 - tr, 'rq', ARGV[9]})
if TRACKED then
  -- An admin deleting the user refuses while this member's lease is
  -- alive (delete_user.lua reads the same set).
  redis.call('ZADD', KEYS[4], ARGV[11], string.format('%s|%s|%d|%d|%d|%d|%d',
    id, s.pid, s.period, ta, tp, tw, tr))
  return {0, s.reach - cost, ta, tp, tw, tr, s.period}
end
return {0, s.reach - cost, ta, tp, tw, tr}
