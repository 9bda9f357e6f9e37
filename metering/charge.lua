-- charge.lua: bring a user's balances up to date and change them, in one
-- atomic step. The single place where the waterfall, lazy refills and lazy
-- grants are computed.
--
-- KEYS[1] user hash   KEYS[2] project hash (ignored for unassigned users)
-- KEYS[3] event stream   KEYS[4] the user's in-flight set (tracked charges only)
-- KEYS[5] the operation's record, {p}:r:<event id> (tracked charges only):
--         it must not exist; cancel_charge.lua creates it as a marker when
--         it finds the charge has not run, so a charge whose answer the
--         gateway lost and then cancelled can never run afterwards
-- ARGV[1] mode:
--   "charge" validate the key, take ARGV[8] through the waterfall. The
--            engine charges with fixed_charge.lua instead (one script per
--            operation); this mode stays only as the reference
--            fixed_charge_script_test.go compares it with, until the
--            other modes have scripts of their own and this file goes.
--   "peek"   report balances as of now, refills applied in the answer only
--   "adjust" add ARGV[8] (signed) to bucket ARGV[12] after refills (admin)
--   "refresh" write due refills and grants with their events, charge nothing
-- ARGV[2] key hash the caller holds (charge only)
-- ARGV[3] user version the caller cached   ARGV[4] project version it cached
-- ARGV[5] now, Unix milliseconds
-- ARGV[6] start of the project's current allowance period, Unix seconds
-- ARGV[7] current month index (year*12+month-1) for monthly grants
-- ARGV[8] cost (charge) or delta (adjust) in micro-credits
-- ARGV[9] event id   ARGV[10] request label (charge)
-- ARGV[11] user id (as in KEYS[1]), recorded in events
-- ARGV[12] bucket field "aw" or "pr" (adjust)   ARGV[13] event kind (adjust)
-- ARGV[14] actor (adjust)   ARGV[15] note (adjust)
-- ARGV[12] in charge mode: lease deadline, Unix ms; when given and > 0 the
--          charge is recorded in KEYS[4] as in flight until release.lua
--          removes it or the deadline passes. The member is
--          "<event id>|<project id>|<allowance period>|<a>|<p>|<w>|<r>": what
--          was taken from each bucket, so cancel_charge.lua can give it back
--          (flightMember in Go builds the same string).
--
-- "reserve" is charge with a hold instead of a final charge (variable cost;
-- settle.lua finishes it): the same checks plus the price version, the
-- amount taken only through the buckets ARGV[13] allows, a reservation
-- record and a 'hold' event instead of 'usage'.
--   KEYS[5] reservation hash (must not exist yet; see KEYS[5] above)
--   KEYS[6] the deployment's lease set
--   KEYS[7] price version key
--   ARGV[12] lease deadline, Unix ms (required)
--   ARGV[13] bucket order: letters a(llowance) p(ool) w (awarded) r (purchased)
--   ARGV[14] price version the estimate used ("" for a fixed amount: no check)
--   ARGV[15] model ("" none)
--   ARGV[16] end of the current allowance period, Unix ms (0: no period)
--
-- Answers {status, ...}:
--   0  ok: charge {0, effective_after, allowance, pool, awarded, purchased,
--                  allowance period} taken
--          peek   {0, effective, allowance, pool_available, awarded, purchased,
--                  pool_balance, pool_used, grant month after due grants}
--          adjust {0, new bucket balance}
--          refresh {0, refilled 0|1, allowance delta, pool-used delta,
--                   period start, grant, grant month}
--   1  insufficient: {1, effective} (charge), {1, bucket balance} (adjust)
--   2  adjust would exceed the maximum balance: {2, bucket balance}
--  -1  user not in Redis (load it)   -2 caller's cache is stale
--  -3  key refused (inactive user or expired key)   -4 project not in Redis
--  -5  reserve: the price version changed since the estimate (reload prices)
--  -6  the operation was cancelled (KEYS[5] exists): nothing done
--  -7  the user was deleted (a tombstone): nothing done
--
-- Every check and read happens before the first write: Redis does not roll
-- back a script that fails half way. Joined after prelude.lua (MAX and the
-- refill, grant and pool rules it shares with fixed_charge.lua).

local mode = ARGV[1]
local u = redis.call('HMGET', KEYS[1], 'kh', 'v', 'st', 'exp', 'p', 'n',
  'a', 'ap', 'pu', 'aw', 'pr', 'mg', 'gm', 'del', 'pt')
if u[14] then return {-7} end
-- Balances are loaded from Postgres on demand; config fields may arrive
-- first. A hash without the partner flag ('pt') was written before grants
-- depended on it: loading the user again adds it (same config version).
if not u[7] or not u[2] or not u[15] then return {-1} end
local now = tonumber(ARGV[5])
local charging = mode == 'charge' or mode == 'reserve'
if charging then
  if u[1] ~= ARGV[2] or u[2] ~= ARGV[3] then return {-2} end
  if u[3] ~= '1' then return {-3} end
  local exp = tonumber(u[4])
  if exp > 0 and now >= exp then return {-3} end
end
if charging and KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then return {-6} end
if mode == 'reserve' and ARGV[14] ~= '' then
  -- A missing version reads as 0, as the gateway's price table does.
  if (redis.call('GET', KEYS[7]) or '0') ~= ARGV[14] then return {-5} end
end

local pid = u[5]
local alw, ap, pu = tonumber(u[7]), tonumber(u[8]), tonumber(u[9])
local aw, pr, mg, gm = tonumber(u[10]), tonumber(u[11]), tonumber(u[12]), tonumber(u[13])
local alw0, ap0, pu0, aw0, pr0, gm0 = alw, ap, pu, aw, pr, gm

local amt, per, pool_on, pb, pl, pname = 0, 'none', false, 0, -1, ''
if pid ~= '0' then
  local p = redis.call('HMGET', KEYS[2], 'v', 'n', 'amt', 'per', 'pe', 'pb', 'pl')
  if not p[1] or not p[6] then return {-4} end
  if charging and p[1] ~= ARGV[4] then return {-2} end
  pname, amt, per = p[2], tonumber(p[3]), p[4]
  pool_on, pb, pl = p[5] == '1', tonumber(p[6]), tonumber(p[7])
end

-- Lazy allowance refill and monthly grants (prelude.lua has the rules).
local pstart = tonumber(ARGV[6])
local refilled, refill_a, refill_pu = false, 0, 0
if due_refill(pid, per, ap, pstart) then
  refilled, refill_a, refill_pu = true, amt - alw, 0 - pu
  alw, pu, ap = amt, 0, pstart
end
local month = tonumber(ARGV[7])
local granted, grant = due_grant(u[15], mg, gm, month, pr)
if granted then pr, gm = pr + grant, month end

local pool_avail = pool_available(pool_on, pb, pl, pu)
local effective = capped(alw + pool_avail + aw + pr)

if mode == 'peek' then
  return {0, effective, alw, pool_avail, aw, pr, pb, pu, gm}
end

-- Writing. Every argument a script passes to Redis costs a conversion,
-- and a charge usually moves a single bucket, so the user hash gets only
-- the fields that changed, and events leave out zero amounts, empty texts
-- and the project of an unassigned user (the reconciler reads an absent
-- amount as 0 and an absent text as none).
local function save(na, nap, npu, naw, npr, ngm)
  local h = {}
  if na ~= alw0 then h[#h + 1] = 'a'; h[#h + 1] = na end
  if nap ~= ap0 then h[#h + 1] = 'ap'; h[#h + 1] = nap end
  if npu ~= pu0 then h[#h + 1] = 'pu'; h[#h + 1] = npu end
  if naw ~= aw0 then h[#h + 1] = 'aw'; h[#h + 1] = naw end
  if npr ~= pr0 then h[#h + 1] = 'pr'; h[#h + 1] = npr end
  if ngm ~= gm0 then h[#h + 1] = 'gm'; h[#h + 1] = ngm end
  if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
end

-- Event ids: the caller's id, suffixed with characters its ids never
-- contain for the refill and grant that come with it.
local t = ARGV[5]
local function append(id, kind, fields)
  local f = {'id', id, 'k', kind, 't', t, 'u', ARGV[11], 'un', u[6]}
  if pid ~= '0' then
    f[11], f[12], f[13], f[14] = 'p', pid, 'pn', pname
  end
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    if v ~= 0 and v ~= '' then
      f[#f + 1] = fields[i]
      f[#f + 1] = v
    end
  end
  redis.call('XADD', KEYS[3], '*', unpack(f))
end

-- The refill and grant events of the lazy updates above ('ap' and 'gm'
-- are never zero: period starts and month indexes are positive).
local function append_due()
  if refilled then
    append(ARGV[9] .. ':r', 'refill', {'a', refill_a, 'pu', refill_pu, 'ap', pstart})
  end
  if grant > 0 then
    append(ARGV[9] .. ':g', 'grant', {'pr', grant, 'gm', month})
  end
end

-- Settling a project: what a charge would write before taking anything.
if mode == 'refresh' then
  save(alw, ap, pu, aw, pr, gm)
  append_due()
  local r = 0
  if refilled then r = 1 end
  return {0, r, refill_a, refill_pu, pstart, grant, month}
end

local amount = tonumber(ARGV[8])
if mode == 'adjust' then
  local bal = aw
  if ARGV[12] == 'pr' then bal = pr end
  local new = bal + amount
  if new < 0 then return {1, bal} end
  if new > MAX then return {2, bal} end
  if ARGV[12] == 'pr' then pr = new else aw = new end
  save(alw, ap, pu, aw, pr, gm)
  append_due()
  append(ARGV[9], ARGV[13], {ARGV[12], amount, 'ac', ARGV[14], 'no', ARGV[15]})
  return {0, new}
end

-- charge and reserve: the waterfall through the allowed buckets in their
-- order (all four in the usual order for a charge), all or nothing.
local order = 'apwr'
if mode == 'reserve' then order = ARGV[13] end
local avail = {a = alw, p = pool_avail, w = aw, r = pr}
local reach = 0
for i = 1, #order do reach = reach + avail[order:sub(i, i)] end
if reach > MAX then reach = MAX end
if amount > reach then return {1, reach} end
local rest = amount
local got = {a = 0, p = 0, w = 0, r = 0}
for i = 1, #order do
  local b = order:sub(i, i)
  local n = rest
  if n > avail[b] then n = avail[b] end
  got[b], rest = n, rest - n
end
local ta, tp, taw, tpr = got.a, got.p, got.w, got.r
save(alw - ta, ap, pu + tp, aw - taw, pr - tpr, gm)
if tp > 0 then redis.call('HINCRBY', KEYS[2], 'pb', 0 - tp) end
append_due()
if mode == 'reserve' then
  -- The hold: what settle.lua needs to refund, take an overrun or
  -- forfeit, without trusting the caller: who, from where, and the
  -- allowance period the allowance part belongs to.
  append(ARGV[9], 'hold', {'a', 0 - ta, 'pl', 0 - tp, 'pu', tp,
    'aw', 0 - taw, 'pr', 0 - tpr, 'rs', amount, 'm', ARGV[15], 'rq', ARGV[10]})
  redis.call('HSET', KEYS[5], 'u', ARGV[11], 'p', pid, 'un', u[6], 'pn', pname,
    'ap', ap, 'ae', ARGV[16], 'o', order, 'rs', amount, 'a', ta, 'pl', tp,
    'w', taw, 'r', tpr, 'm', ARGV[15], 'rq', ARGV[10])
  redis.call('ZADD', KEYS[6], ARGV[12], ARGV[9])
  redis.call('ZADD', KEYS[4], ARGV[12], ARGV[9])
  return {0, reach - amount, ta, tp, taw, tpr}
end
append(ARGV[9], 'usage', {'c', amount, 'a', 0 - ta, 'pl', 0 - tp, 'pu', tp,
  'aw', 0 - taw, 'pr', 0 - tpr, 'rq', ARGV[10]})
-- In-flight tracking: an admin deleting the user refuses while this
-- member's lease is alive (delete_user.lua reads the same set).
if ARGV[12] and tonumber(ARGV[12]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[12], string.format('%s|%s|%d|%d|%d|%d|%d',
    ARGV[9], pid, ap, ta, tp, taw, tpr))
end
return {0, effective - amount, ta, tp, taw, tpr, ap}
