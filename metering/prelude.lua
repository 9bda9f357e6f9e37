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
