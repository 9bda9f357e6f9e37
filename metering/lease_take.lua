-- lease_take.lua: a gateway takes a credit lease for a busy user: the
-- first request's charge and, when the balance is large enough, credits
-- for the user's next requests, which the gateway then admits from memory
-- (lease.go). The lease is a hold: taken through the waterfall allowance →
-- pool → awarded → purchased like any charge, recorded so lease_end.lua
-- (or the sweeper) gives back what was not used.
--
-- Joined after prelude.lua (refill, grant and pool rules).
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- KEYS[3] event stream   KEYS[4] the lease's record {p}:r:<lease id>: it
--         must not exist (lease_end.lua leaves a marker when it meets a
--         lease that has not been taken, so a take whose answer the gateway
--         lost can never run afterwards)
-- KEYS[5] the deployment's credit-lease set (lease id → deadline, Unix ms)
-- KEYS[6] the user's credit-lease set (same members)
-- ARGV[1] key hash the caller holds   ARGV[2] user version it cached
-- ARGV[3] project version it cached   ARGV[4] now, Unix ms
-- ARGV[5] start of the project's current allowance period, Unix seconds
-- ARGV[6] current month index   ARGV[7] the first request's cost
-- ARGV[8] lease size wanted   ARGV[9] lease id (the hold event's)
-- ARGV[10] user id   ARGV[11] record deadline, Unix ms (the sweeper ends
-- the lease after it)   ARGV[12] gateway id   ARGV[13] the first request's
-- label   ARGV[14] seconds the record of a single request's lease lives
--
-- Sizing: beyond the first request, a lease takes at most 1/SHARE of what
-- the user can spend, shared between the user's live leases (SHARE ×
-- (leases + 1)), so the rest stays in Redis for other gateways, and only
-- within one stretch of the waterfall that nobody else draws from (see
-- "room" below). When that is under one more request's cost, the lease
-- holds the first request's cost alone and is final at once (its usage
-- event appended here; nothing to flush or end), so near a zero balance,
-- and while a pool with credits pays, every request makes its own round
-- trip exactly as without leases. Every take leaves a record, so a take
-- whose answer was lost is undone by lease_end.lua like any other.
--
-- Answers {0, effective outside the lease after, a, p, w, r taken,
-- allowance period, lease size (the cost: a single request's lease)}: the
-- first request's cost is the lease's
-- first use (the gateway appends its usage event with the lease's next
-- flush); {1, effective}: insufficient, nothing taken; or a status alone:
-- -1 user not in Redis, -2 caller's cache stale, -3 key refused, -4
-- project not in Redis, -6 cancelled (the record exists), -7 user deleted.
--
-- Every check and read happens before the first write.

local SHARE = 4

local status, s = charge_position(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
if status then return {status} end
local cost = tonumber(ARGV[7])
if cost > s.reach then return {1, s.reach} end

-- The first request, through the waterfall as a plain charge.
local ta, tp, tw, tr = take_in_order(s, cost)

-- The lease extends it only within one stretch of the waterfall: the
-- user's own allowance, or, once the pool has nothing left for this user
-- (off, empty, or the user's limit reached), awarded then purchased. A
-- pool with credits is drawn one request at a time (its other users draw
-- from it too), so each request's split is the one of plain charges.
local room = 0
if s.alw - ta > 0 then
  room = s.alw - ta
elseif s.pool - tp == 0 then
  room = s.aw - tw + s.pr - tr
end
-- Leases of this user that are still live (expired ones wait for the
-- sweeper, but no longer count for its share).
local leases = redis.call('ZCOUNT', KEYS[6], '(' .. ARGV[4], '+inf')
local extra = math.floor(s.reach / (SHARE * (leases + 1)))
if extra > room then extra = room end
if extra > tonumber(ARGV[8]) - cost then extra = tonumber(ARGV[8]) - cost end
if extra < cost then extra = 0 end
if s.alw - ta > 0 then
  ta = ta + extra
else
  local w = extra
  if w > s.aw - tw then w = s.aw - tw end
  tw, tr = tw + w, tr + extra - w
end
local take = cost + extra

save_taken(KEYS[1], KEYS[2], s, ta, tp, tw, tr)
local id, t, uid, uname, pid, pname = ARGV[9], ARGV[4], ARGV[10], s.uname, s.pid, s.pname
append_due_events(KEYS[3], id, t, uid, uname, pid, pname,
  s.refilled, s.refill_a, s.refill_pu, s.pstart, s.grant, s.month)

-- The lease event: amounts taken as negative deltas (a hold, but of its
-- own kind: heal.go restores reservations from holds). A lease of the
-- first request alone is that request's usage event instead, and its
-- record stays only as what undoes it if the gateway lost this answer
-- (then refused the request): no flush, no end.
local single = extra == 0
local amounts = {'a', 0 - ta, 'pl', 0 - tp, 'pu', tp, 'aw', 0 - tw, 'pr', 0 - tr}
if single then
  amounts[#amounts + 1], amounts[#amounts + 2] = 'c', cost
  amounts[#amounts + 1], amounts[#amounts + 2] = 'rq', ARGV[13]
  append_event(KEYS[3], event_head(id, 'usage', t, uid, uname, pid, pname), amounts)
else
  amounts[#amounts + 1], amounts[#amounts + 2] = 'rs', take
  append_event(KEYS[3], event_head(id, 'lease', t, uid, uname, pid, pname), amounts)
end

-- The record: what lease_end.lua needs to give back the unused part
-- without trusting the caller ('used' grows with each flush; a single
-- request's lease is used whole and keeps its label for the undo).
local used, label = 0, ''
if single then used, label = cost, ARGV[13] end
redis.call('HSET', KEYS[4], 'u', uid, 'p', pid, 'un', uname, 'pn', pname,
  'ap', s.period, 'a', ta, 'pl', tp, 'w', tw, 'r', tr, 'tk', take, 'used', used,
  'g', ARGV[12], 'd', ARGV[11])
if single then
  redis.call('HSET', KEYS[4], 's', '1', 'rq', label)
  redis.call('EXPIRE', KEYS[4], ARGV[14])
else
  redis.call('ZADD', KEYS[5], ARGV[11], id)
  redis.call('ZADD', KEYS[6], ARGV[11], id)
end
return {0, s.reach - take, ta, tp, tw, tr, s.period, take}
