-- settle.lua: finish a reservation (reserve.lua): give the
-- unused part back or take the overrun, append the final usage event, and
-- forget the reservation. Settling a reservation that is gone does nothing.
--
-- It runs without the caller's key (the sweeper has none, and a key
-- rotated mid-request must not keep the money) and writes no refill or
-- grant: those belong to the next charge. Instead it decides from what the
-- reservation recorded whether the allowance it drew from still exists.
--
-- KEYS[1] user hash   KEYS[2] hash of the project the reservation drew from
-- (the user hash again when none)   KEYS[3] event stream
-- KEYS[4] the user's in-flight set   KEYS[5] reservation hash
-- KEYS[6] the deployment's lease set
-- ARGV[1] now, Unix ms   ARGV[2] reservation id (the hold event's id)
-- ARGV[3] cost in micro-credits, or -1: exactly the reserved amount
-- ARGV[4] input units   ARGV[5] output units
-- ARGV[6] upstream status ("" unknown: the sweeper settled it)
-- ARGV[7] duration ms   ARGV[8] note ("" none)
-- ARGV[9] "1" when Postgres has no such user any more: nothing to give back
--         to or take from, the reservation just ends
-- ARGV[10] the model the upstream served when it differs from the reserved
--         one ("" none)
--
-- Answers {0, charged, refunded, overrun, shortfall, remaining, forfeited}
-- or {1} already settled, {-1} user not in Redis (load it, or ARGV[9]),
-- {-4} the reservation's project not in Redis (load it).

local MAX = 9007199254740991
local r = redis.call('HMGET', KEYS[5], 'u', 'p', 'un', 'pn', 'ap', 'ae', 'o',
  'rs', 'a', 'pl', 'w', 'r', 'm', 'rq')
if not r[1] then return {1} end
local u = redis.call('HMGET', KEYS[1], 'a', 'ap', 'pu', 'aw', 'pr', 'p', 'del')
-- A deleted user (a tombstone, or gone from Postgres too) gets nothing
-- back and pays nothing more: the reservation just ends.
local orphan = ARGV[9] == '1' or u[7] ~= false
if not u[1] and not orphan then return {-1} end

local now = tonumber(ARGV[1])
local reserved = tonumber(r[8])
local cost = tonumber(ARGV[3])
if cost < 0 then cost = reserved end
local order = r[7]
local taken = {a = tonumber(r[9]), p = tonumber(r[10]), w = tonumber(r[11]), r = tonumber(r[12])}
local pid = r[2]

local alw, ap, pu, aw, pr = 0, 0, 0, 0, 0
if not orphan then
  alw, ap, pu = tonumber(u[1]), tonumber(u[2]), tonumber(u[3])
  aw, pr = tonumber(u[4]), tonumber(u[5])
end
-- The allowance and the pool draw belong to one period of one project.
-- When the period rolled (by the clock, or a refill already written) or the
-- user moved to another project, neither may be touched: a refund there is
-- forfeited, an overrun comes from elsewhere.
local ae = tonumber(r[6])
local same_period = not orphan and u[6] == pid and tonumber(r[5]) == ap and
  (ae == 0 or now < ae)
local pool_ok, pb, pl = false, 0, -1
if pid ~= '0' and not orphan then
  local p = redis.call('HMGET', KEYS[2], 'pb', 'pe', 'pl')
  if not p[1] then return {-4} end
  pool_ok, pb, pl = true, tonumber(p[1]), tonumber(p[3])
  -- Refunds go back to the pool they came from whatever happened since;
  -- new draws only while the pool is on and the user still in it.
  if p[2] ~= '1' or u[6] ~= pid then pl = -2 end
end

local d = {a = 0, p = 0, w = 0, r = 0}
local dpu, refunded, overrun, shortfall, forfeited = 0, 0, 0, 0, 0
if cost < reserved then
  -- Give back in reverse order, each bucket at most what it gave.
  local left = reserved - cost
  for i = #order, 1, -1 do
    local b = order:sub(i, i)
    local n = taken[b]
    if n > left then n = left end
    left = left - n
    if n > 0 then
      local ok = not orphan
      if b == 'a' then ok = ok and same_period end
      if b == 'p' then ok = ok and pool_ok end
      if b == 'w' and aw + n > MAX then ok = false end
      if b == 'r' and pr + n > MAX then ok = false end
      if ok then
        d[b] = n
        refunded = refunded + n
        if b == 'p' and same_period then
          -- Only this period's draw shrinks; a new period starts at 0.
          local back = n
          if back > pu then back = pu end
          dpu = 0 - back
        end
      else
        forfeited = forfeited + n
      end
    end
  end
elseif cost > reserved then
  -- The overrun: what the buckets still hold, in the usual order, as far
  -- as it goes (the upstream already answered; no all-or-nothing).
  local rest = cost - reserved
  local pool_avail = 0
  if pool_ok and pl ~= -2 and same_period then
    pool_avail = pb
    if pl >= 0 and pl - pu < pool_avail then pool_avail = pl - pu end
    if pool_avail < 0 then pool_avail = 0 end
  end
  local avail = {a = 0, p = pool_avail, w = aw, r = pr}
  if same_period then avail.a = alw end
  for i = 1, #order do
    local b = order:sub(i, i)
    local n = rest
    if n > avail[b] then n = avail[b] end
    rest = rest - n
    d[b] = 0 - n
    overrun = overrun + n
  end
  dpu = 0 - d.p
  shortfall = rest
end
local charged = cost - shortfall

-- Writing.
if not orphan then
  local h = {}
  if d.a ~= 0 then h[#h + 1] = 'a'; h[#h + 1] = alw + d.a end
  if dpu ~= 0 then h[#h + 1] = 'pu'; h[#h + 1] = pu + dpu end
  if d.w ~= 0 then h[#h + 1] = 'aw'; h[#h + 1] = aw + d.w end
  if d.r ~= 0 then h[#h + 1] = 'pr'; h[#h + 1] = pr + d.r end
  if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
  if d.p ~= 0 then redis.call('HINCRBY', KEYS[2], 'pb', d.p) end
end
local f = {'id', ARGV[2] .. ':s', 'k', 'usage', 't', ARGV[1], 'u', r[1], 'un', r[3],
  'rs', reserved}
if ARGV[6] ~= '' then f[#f + 1] = 'st'; f[#f + 1] = ARGV[6] end
if pid ~= '0' then
  f[#f + 1] = 'p'; f[#f + 1] = pid; f[#f + 1] = 'pn'; f[#f + 1] = r[4]
end
local opt = {'c', charged, 'a', d.a, 'pl', d.p, 'pu', dpu, 'aw', d.w, 'pr', d.r,
  'm', r[13], 'rq', r[14], 'iu', ARGV[4], 'ou', ARGV[5], 'ms', ARGV[7],
  'sf', shortfall, 'ff', forfeited, 'no', ARGV[8], 'rm', ARGV[10] or ''}
for i = 1, #opt, 2 do
  local v = opt[i + 1]
  if v ~= 0 and v ~= '' and v ~= '0' then
    f[#f + 1] = opt[i]
    f[#f + 1] = v
  end
end
redis.call('XADD', KEYS[3], '*', unpack(f))
redis.call('DEL', KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])

local remaining = 0
if not orphan then
  local avail = {a = 0, p = 0, w = aw + d.w, r = pr + d.r}
  if same_period then avail.a = alw + d.a end
  if pool_ok and pl ~= -2 and same_period then
    local pa = pb + d.p
    if pl >= 0 and pl - (pu + dpu) < pa then pa = pl - (pu + dpu) end
    if pa > 0 then avail.p = pa end
  end
  for i = 1, #order do remaining = remaining + avail[order:sub(i, i)] end
  if remaining > MAX then remaining = MAX end
end
return {0, charged, refunded, overrun, shortfall, remaining, forfeited}
