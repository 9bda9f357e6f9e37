-- lease_end.lua: end a credit lease (lease_take.lua): give back what its
-- gateway did not use, append the lease_end event, forget the lease. The
-- gateway ends its leases when they idle, near their deadline, at a period
-- boundary, on a recall and on shutdown; the sweeper ends those of a
-- gateway that died, with the use its last flush recorded. Ending a lease
-- that is gone does nothing but make sure it cannot be taken later.
--
-- Like settle.lua it runs without the key (the sweeper has none) and
-- decides from the record whether the allowance it drew from still exists.
--
-- KEYS[1] user hash   KEYS[2] hash of the project the lease drew from (the
-- user hash again when none)   KEYS[3] event stream   KEYS[4] the lease's
-- record   KEYS[5] the deployment's credit-lease set   KEYS[6] the user's
-- ARGV[1] now, Unix ms   ARGV[2] lease id
-- ARGV[3] credits used, or -1: as the record says (the sweeper)
-- ARGV[4] seconds the marker of a lease never taken lives
-- ARGV[5] note for the event ('' none)   ARGV[6] "1" when Postgres has no
-- such user any more: nothing to give back to, the lease just ends
--
-- A single request's lease (field 's') ends only when its take's answer was
-- lost: its request's charge is undone by a void event.
--
-- Answers {0, given back, forfeited}; {1} no such lease (it ended before,
-- or was never taken: a marker now makes sure it never is); {-1} user not
-- in Redis (load it); {-4} the lease's project not in Redis (load it);
-- {-8} more used than the lease holds (nothing written).

local MAX = 9007199254740991
local r = redis.call('HMGET', KEYS[4], 'u', 'p', 'un', 'pn', 'ap', 'a',
  'pl', 'w', 'r', 'tk', 'used', 's', 'rq')
if not r[1] then
  if redis.call('EXISTS', KEYS[4]) == 0 then
    redis.call('HSET', KEYS[4], 'x', '1')
    redis.call('EXPIRE', KEYS[4], ARGV[4])
  end
  redis.call('ZREM', KEYS[5], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[2])
  return {1}
end
local take = tonumber(r[10])
local used = tonumber(ARGV[3])
if used < 0 then used = tonumber(r[11]) end
if used > take then return {-8} end

local u = redis.call('HMGET', KEYS[1], 'a', 'ap', 'pu', 'aw', 'pr', 'p', 'del')
local orphan = ARGV[6] == '1' or u[7] ~= false
if not u[1] and not orphan then return {-1} end
-- The allowance and pool-use parts go back while the user is in the same
-- project and no refill has been written since the take: a period that
-- ended meanwhile is reset by the next refill anyway (which then counts
-- them), so the ledger shows as spent only what requests used.
local pid = r[2]
local same_period = not orphan and u[6] == pid and tonumber(r[5]) == tonumber(u[2])
local pool_ok = false
if pid ~= '0' then
  local p = redis.call('HMGET', KEYS[2], 'pb')
  if not p[1] and not orphan then return {-4} end
  pool_ok = p[1] ~= false
end

-- The unused part is the end of the waterfall (the gateway used the lease
-- in order): give back purchased, then awarded, pool, allowance, each at
-- most what it gave.
local alw, pu, aw, pr = 0, 0, 0, 0
if not orphan then
  alw, pu, aw, pr = tonumber(u[1]), tonumber(u[3]), tonumber(u[4]), tonumber(u[5])
end
local taken = {a = tonumber(r[6]), p = tonumber(r[7]), w = tonumber(r[8]), r = tonumber(r[9])}
local d = {a = 0, p = 0, w = 0, r = 0}
local dpu, back, forfeited = 0, 0, 0
local left = take - used
for _, b in ipairs({'r', 'w', 'p', 'a'}) do
  local n = taken[b]
  if n > left then n = left end
  left = left - n
  if n > 0 then
    local ok = not orphan
    if b == 'a' then ok = ok and same_period end
    if b == 'p' then ok = pool_ok end
    if b == 'w' and aw + n > MAX then ok = false end
    if b == 'r' and pr + n > MAX then ok = false end
    if ok then
      d[b] = n
      back = back + n
      if b == 'p' and same_period then
        local n_pu = n
        if n_pu > pu then n_pu = pu end
        dpu = 0 - n_pu
      end
    else
      forfeited = forfeited + n
    end
  end
end

if not orphan then
  local h = {}
  if d.a ~= 0 then h[#h + 1] = 'a'; h[#h + 1] = alw + d.a end
  if dpu ~= 0 then h[#h + 1] = 'pu'; h[#h + 1] = pu + dpu end
  if d.w ~= 0 then h[#h + 1] = 'aw'; h[#h + 1] = aw + d.w end
  if d.r ~= 0 then h[#h + 1] = 'pr'; h[#h + 1] = pr + d.r end
  if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
end
if d.p ~= 0 then redis.call('HINCRBY', KEYS[2], 'pb', d.p) end

-- A single request's lease (lease_take.lua) was charged as a usage event:
-- undoing it is a void (its cost back, negative), as for a lost charge.
local single = r[12] == '1'
local f = {'id', ARGV[2] .. ':e', 'k', 'lease_end', 't', ARGV[1], 'u', r[1], 'un', r[3],
  'rs', take}
if single then
  f = {'id', ARGV[2] .. ':e', 'k', 'void', 't', ARGV[1], 'u', r[1], 'un', r[3],
    'c', 0 - (take - used)}
  if r[13] and r[13] ~= '' then f[#f + 1] = 'rq'; f[#f + 1] = r[13] end
end
if pid ~= '0' then f[#f + 1] = 'p'; f[#f + 1] = pid; f[#f + 1] = 'pn'; f[#f + 1] = r[4] end
local opt = {'a', d.a, 'pl', d.p, 'pu', dpu, 'aw', d.w, 'pr', d.r, 'ff', forfeited, 'no', ARGV[5]}
for i = 1, #opt, 2 do
  local v = opt[i + 1]
  if v ~= 0 and v ~= '' then f[#f + 1] = opt[i]; f[#f + 1] = v end
end
redis.call('XADD', KEYS[3], '*', unpack(f))
redis.call('DEL', KEYS[4])
if single then
  -- Ending it again must find nothing to give back.
  redis.call('HSET', KEYS[4], 'x', '1')
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
return {0, back, forfeited}
