-- cancel_charge.lua: make sure a tracked charge whose answer the gateway
-- lost (a timeout, a broken connection) leaves the user with nothing
-- taken, because the gateway refused the request. Either the charge ran,
-- and everything it took goes back, or it has not run, and a marker makes
-- sure it never will (the tracked charge refuses when its KEYS[5] exists): a
-- command stuck in a stalled Redis or a retransmitting socket may still
-- arrive later. Running this again changes nothing.
--
-- KEYS[1] user hash   KEYS[2] hash of the project the charge drew from
-- (the user hash again when none)   KEYS[3] event stream
-- KEYS[4] the user's in-flight set   KEYS[5] the charge's record key
-- ARGV[1] the charge's event id   ARGV[2] its lease deadline (its score in
-- KEYS[4])   ARGV[3] now, Unix ms   ARGV[4] seconds the marker lives
-- ARGV[5] user id   ARGV[6] note for the event   ARGV[7] the charge's
-- request label
--
-- Answers {0} it had not run (now it cannot), {2, given back} it ran and
-- was undone, {-1} user not in Redis (load it), {-4} project not in Redis.
--
-- The charge's in-flight member says what it took from each bucket (see
-- charge.lua). The undo mirrors settle.lua's refund: the allowance and the
-- pool draw only within the same project and period, else forfeited.

local MAX = 9007199254740991
local id = ARGV[1]
local member
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[2], ARGV[2])) do
  if string.sub(m, 1, #id + 1) == id .. '|' then member = m end
end
if not member then
  redis.call('HSET', KEYS[5], 'x', '1')
  redis.call('EXPIRE', KEYS[5], ARGV[4])
  return {0}
end
local pid, cap, ta, tp, tw, tr = string.match(member, '^[^|]+|(%d+)|(%-?%d+)|(%d+)|(%d+)|(%d+)|(%d+)$')
ta, tp, tw, tr = tonumber(ta), tonumber(tp), tonumber(tw), tonumber(tr)

local u = redis.call('HMGET', KEYS[1], 'a', 'ap', 'pu', 'aw', 'pr', 'p', 'n', 'del')
local deleted = u[8] ~= false
if not u[1] and not deleted then return {-1} end
local pname = ''
if pid ~= '0' and not deleted then
  local p = redis.call('HMGET', KEYS[2], 'pb', 'n')
  if not p[1] then return {-4} end
  pname = p[2]
end

-- Writing: the member goes, the marker stays (a second call is a no-op).
redis.call('ZREM', KEYS[4], member)
redis.call('HSET', KEYS[5], 'x', '1')
redis.call('EXPIRE', KEYS[5], ARGV[4])
if deleted then return {2, 0} end -- nobody to give it back to

local alw, ap, pu = tonumber(u[1]), tonumber(u[2]), tonumber(u[3])
local aw, pr = tonumber(u[4]), tonumber(u[5])
local same = u[6] == pid and ap == tonumber(cap)
local da, dpu, forfeited = 0, 0, 0
if same then da = ta else forfeited = ta end
if same then
  dpu = tp
  if dpu > pu then dpu = pu end
  dpu = 0 - dpu
end
if aw + tw > MAX then tw = MAX - aw end
if pr + tr > MAX then tr = MAX - pr end

local h = {}
if da ~= 0 then h[#h + 1] = 'a'; h[#h + 1] = alw + da end
if dpu ~= 0 then h[#h + 1] = 'pu'; h[#h + 1] = pu + dpu end
if tw ~= 0 then h[#h + 1] = 'aw'; h[#h + 1] = aw + tw end
if tr ~= 0 then h[#h + 1] = 'pr'; h[#h + 1] = pr + tr end
if #h > 0 then redis.call('HSET', KEYS[1], unpack(h)) end
if tp > 0 then redis.call('HINCRBY', KEYS[2], 'pb', tp) end

local back = da + tp + tw + tr
local f = {'id', id .. ':v', 'k', 'void', 't', ARGV[3], 'u', ARGV[5], 'un', u[7],
  'c', 0 - back}
if pid ~= '0' then
  f[#f + 1] = 'p'; f[#f + 1] = pid; f[#f + 1] = 'pn'; f[#f + 1] = pname
end
local opt = {'a', da, 'pl', tp, 'pu', dpu, 'aw', tw, 'pr', tr, 'no', ARGV[6], 'rq', ARGV[7]}
for i = 1, #opt, 2 do
  if opt[i + 1] ~= 0 and opt[i + 1] ~= '' then
    f[#f + 1] = opt[i]
    f[#f + 1] = opt[i + 1]
  end
end
redis.call('XADD', KEYS[3], '*', unpack(f))
return {2, back}
