-- prelude.lua: the balance rules every money script shares, joined in
-- front of each such script when it is loaded (rediskeys.go: mustScriptWithPrelude),
-- so the refill, grant and waterfall arithmetic exists once. Only local
-- definitions: a script starts right after it.
--
-- Numbers are Lua doubles, exact below 2^53; MAX keeps every stored
-- balance there.

local MAX = 9007199254740991

-- due_refill: whether the allowance period rolled since the last refill.
-- "<" rather than "~=" so a gateway whose clock lags cannot roll the
-- period back. Only a project with a period refills.
local function due_refill(pid, per, ap, pstart)
  return pid ~= '0' and per ~= 'none' and ap < pstart
end

-- due_grant: whether a monthly grant is due (then 'gm' becomes month)
-- and how much it pays into purchased: one grant per month begun since
-- the last one paid, only while the user is a partner, never past MAX (a
-- due grant may pay 0 at MAX; its months count as paid all the same).
-- 'gm' is the last month paid or owed nothing (a grant starts with the
-- current month owed nothing: patch_user.lua) and only grows.
local function due_grant(partner, mg, gm, month, pr)
  if partner ~= '1' or mg <= 0 or gm >= month then return false, 0 end
  local months = month - gm
  if gm <= 0 then months = 1 end
  local grant = mg * months
  if pr + grant > MAX then grant = MAX - pr end
  return true, grant
end

-- pool_available: what the project's pool can give this user: its
-- balance, within the per-user limit pl (-1: none) less what the user
-- used this period (pu).
local function pool_available(pool_on, pb, pl, pu)
  if not pool_on then return 0 end
  local avail = pb
  if pl >= 0 and pl - pu < avail then avail = pl - pu end
  if avail < 0 then avail = 0 end
  return avail
end

-- capped: a sum of buckets, each below 2^53 but together maybe not; past
-- MAX it would round, so it is capped (no single charge exceeds MAX).
local function capped(v)
  if v > MAX then return MAX end
  return v
end

-- event_head: the fields every event carries: its id, kind, time (Unix
-- ms), user id and name, and for an assigned user the project and its
-- name. append_event adds the rest.
local function event_head(id, kind, t, uid, uname, pid, pname)
  local f = {'id', id, 'k', kind, 't', t, 'u', uid, 'un', uname}
  if pid ~= '0' then f[11], f[12], f[13], f[14] = 'p', pid, 'pn', pname end
  return f
end

-- append_event: XADD head (event_head) and the field/value pairs of
-- fields whose value is neither 0 nor '': the reconciler reads an absent
-- amount as 0 and an absent text as none, and every argument a script
-- passes to Redis costs a conversion.
local function append_event(stream, head, fields)
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    if v ~= 0 and v ~= '' then
      head[#head + 1] = fields[i]
      head[#head + 1] = v
    end
  end
  redis.call('XADD', stream, '*', unpack(head))
end

-- append_due_events: the events of the lazy updates a script wrote before
-- its own: the refill (when refilled: allowance and pool-use deltas, the
-- new period start) and the grant (when it paid anything). Their ids are
-- the operation's id suffixed with characters event ids never contain,
-- so each is recorded once however the operation is retried.
local function append_due_events(stream, id, t, uid, uname, pid, pname,
    refilled, refill_a, refill_pu, pstart, grant, month)
  if refilled then
    append_event(stream, event_head(id .. ':r', 'refill', t, uid, uname, pid, pname),
      {'a', refill_a, 'pu', refill_pu, 'ap', pstart})
  end
  if grant > 0 then
    append_event(stream, event_head(id .. ':g', 'grant', t, uid, uname, pid, pname),
      {'pr', grant, 'gm', month})
  end
end

-- charge_position: what a charge checks and reads before it writes
-- anything. The caller's key hash and cached versions (kh, uv, pv), the
-- user (deleted, loaded, active, key not expired), a cancel's marker
-- (record, when given: it must not exist), the project; then the due
-- refill and grant applied to the values, not yet written. Returns a
-- status to answer alone, or nil and the position: the stored fields as
-- numbers, with pool (what the pool can give the user), reach (all it can
-- spend) and period (the allowance period after the refill).
local function charge_position(ukey, pkey, record, kh, uv, pv, now, pstart, month)
  local u = redis.call('HMGET', ukey, 'kh', 'v', 'st', 'exp', 'p', 'n',
    'a', 'ap', 'pu', 'aw', 'pr', 'mg', 'gm', 'del', 'pt')
  if u[14] then return -7 end
  if not u[7] or not u[2] or not u[15] then return -1 end
  if u[1] ~= kh or u[2] ~= uv then return -2 end
  if u[3] ~= '1' then return -3 end
  local exp = tonumber(u[4])
  if exp > 0 and now >= exp then return -3 end
  if record and redis.call('EXISTS', record) == 1 then return -6 end
  -- Every field in the constructor: a table that grows rehashes.
  local s = {pid = u[5], uname = u[6], alw = tonumber(u[7]), ap = tonumber(u[8]),
    pu = tonumber(u[9]), aw = tonumber(u[10]), pr = tonumber(u[11]), gm = tonumber(u[13]),
    pname = '', pool_on = false, pb = 0, pl = -1, pstart = pstart, month = month,
    refilled = false, refill_a = 0, refill_pu = 0, period = 0, granted = false, grant = 0,
    pool = 0, reach = 0}
  local per, amt = 'none', 0
  if s.pid ~= '0' then
    local p = redis.call('HMGET', pkey, 'v', 'n', 'amt', 'per', 'pe', 'pb', 'pl')
    if not p[1] or not p[6] then return -4 end
    if p[1] ~= pv then return -2 end
    s.pname, amt, per = p[2], tonumber(p[3]), p[4]
    s.pool_on, s.pb, s.pl = p[5] == '1', tonumber(p[6]), tonumber(p[7])
  end
  s.refilled = due_refill(s.pid, per, s.ap, pstart)
  s.refill_a, s.refill_pu, s.period = 0, 0, s.ap
  if s.refilled then
    s.refill_a, s.refill_pu, s.period = amt - s.alw, 0 - s.pu, pstart
    s.alw, s.pu = amt, 0
  end
  s.granted, s.grant = due_grant(u[15], tonumber(u[12]), s.gm, month, s.pr)
  if s.granted then s.pr = s.pr + s.grant end
  s.pool = pool_available(s.pool_on, s.pb, s.pl, s.pu)
  s.reach = capped(s.alw + s.pool + s.aw + s.pr)
  return nil, s
end

-- take_in_order: amount through allowance, pool, awarded, purchased, in
-- that order, from position s (the caller checked that s.reach pays it).
local function take_in_order(s, amount)
  local ta, tp, tw, tr = amount, 0, 0, 0
  if ta > s.alw then ta = s.alw end
  local rest = amount - ta
  if rest > 0 then
    tp = rest; if tp > s.pool then tp = s.pool end
    rest = rest - tp
    tw = rest; if tw > s.aw then tw = s.aw end
    tr = rest - tw
  end
  return ta, tp, tw, tr
end

-- save_taken: write position s with ta, tp, tw, tr taken (and its due
-- refill and grant): only the fields that changed, as each argument costs
-- a conversion; the pool's part comes off the project's pool.
local function save_taken(ukey, pkey, s, ta, tp, tw, tr)
  local h, n = {}, 0
  if s.refilled or ta > 0 then h[1], h[2], n = 'a', s.alw - ta, 2 end
  if s.refilled then h[n + 1], h[n + 2], n = 'ap', s.pstart, n + 2 end
  if s.refilled or tp > 0 then h[n + 1], h[n + 2], n = 'pu', s.pu + tp, n + 2 end
  if tw > 0 then h[n + 1], h[n + 2], n = 'aw', s.aw - tw, n + 2 end
  if s.grant > 0 or tr > 0 then h[n + 1], h[n + 2], n = 'pr', s.pr - tr, n + 2 end
  if s.granted then h[n + 1], h[n + 2], n = 'gm', s.month, n + 2 end
  if n > 0 then redis.call('HSET', ukey, unpack(h)) end
  if tp > 0 then redis.call('HINCRBY', pkey, 'pb', 0 - tp) end
end
