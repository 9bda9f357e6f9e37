-- prelude.lua: the balance rules every money script shares, joined in
-- front of each such script when it is loaded (scripts.go: withPrelude),
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
