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

local u = redis.call('HMGET', KEYS[1], 'kh', 'v', 'st', 'exp', 'p', 'n',
  'a', 'ap', 'pu', 'aw', 'pr', 'mg', 'gm', 'del', 'pt')
if u[14] then return {-7} end
if not u[7] or not u[2] or not u[15] then return {-1} end
if u[1] ~= ARGV[1] or u[2] ~= ARGV[2] then return {-2} end
if u[3] ~= '1' then return {-3} end
local now = tonumber(ARGV[4])
local exp = tonumber(u[4])
if exp > 0 and now >= exp then return {-3} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {-6} end

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
  alw, pu, ap = amt, 0, pstart
end
local month = tonumber(ARGV[6])
local granted, grant = due_grant(u[15], tonumber(u[12]), gm, month, pr)
if granted then pr = pr + grant end

local pool = pool_available(pool_on, pb, pl, pu)
local reach = capped(alw + pool + aw + pr)
local cost = tonumber(ARGV[7])
if cost > reach then return {1, reach} end

-- The first request, through the waterfall as a plain charge.
local ta, tp, tw, tr = cost, 0, 0, 0
if ta > alw then ta = alw end
local rest = cost - ta
if rest > 0 then
  tp = rest; if tp > pool then tp = pool end
  rest = rest - tp
  tw = rest; if tw > aw then tw = aw end
  tr = rest - tw
end

-- The lease extends it only within one stretch of the waterfall: the
-- user's own allowance, or, once the pool has nothing left for this user
-- (off, empty, or the user's limit reached), awarded then purchased. A
-- pool with credits is drawn one request at a time (its other users draw
-- from it too), so each request's split is the one of plain charges.
local room = 0
if alw - ta > 0 then
  room = alw - ta
elseif pool - tp == 0 then
  room = aw - tw + pr - tr
end
-- Leases of this user that are still live (expired ones wait for the
-- sweeper, but no longer count for its share).
local leases = redis.call('ZCOUNT', KEYS[6], '(' .. ARGV[4], '+inf')
local extra = math.floor(reach / (SHARE * (leases + 1)))
if extra > room then extra = room end
if extra > tonumber(ARGV[8]) - cost then extra = tonumber(ARGV[8]) - cost end
if extra < cost then extra = 0 end
if alw - ta > 0 then
  ta = ta + extra
else
  local w = extra
  if w > aw - tw then w = aw - tw end
  tw, tr = tw + w, tr + extra - w
end
local take = cost + extra

local h, n = {}, 0
if refilled or ta > 0 then h[1], h[2], n = 'a', alw - ta, 2 end
if refilled then h[n + 1], h[n + 2], n = 'ap', pstart, n + 2 end
if refilled or tp > 0 then h[n + 1], h[n + 2], n = 'pu', pu + tp, n + 2 end
if tw > 0 then h[n + 1], h[n + 2], n = 'aw', aw - tw, n + 2 end
if grant > 0 or tr > 0 then h[n + 1], h[n + 2], n = 'pr', pr - tr, n + 2 end
if granted then h[n + 1], h[n + 2], n = 'gm', month, n + 2 end
if n > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
if tp > 0 then redis.call('HINCRBY', KEYS[2], 'pb', 0 - tp) end

local id, t, uid, uname = ARGV[9], ARGV[4], ARGV[10], u[6]
append_due_events(KEYS[3], id, t, uid, uname, pid, pname,
  refilled, refill_a, refill_pu, pstart, grant, month)

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
-- without trusting the caller ('used' grows with each flush).
redis.call('HSET', KEYS[4], 'u', uid, 'p', pid, 'un', uname, 'pn', pname,
  'ap', ap, 'a', ta, 'pl', tp, 'w', tw, 'r', tr, 'tk', take, 'used', 0,
  'g', ARGV[12], 'd', ARGV[11])
if single then
  redis.call('HSET', KEYS[4], 's', '1', 'used', cost, 'rq', ARGV[13])
  redis.call('EXPIRE', KEYS[4], ARGV[14])
  return {0, reach - take, ta, tp, tw, tr, ap, take}
end
redis.call('ZADD', KEYS[5], ARGV[11], id)
redis.call('ZADD', KEYS[6], ARGV[11], id)
return {0, reach - take, ta, tp, tw, tr, ap, take}
