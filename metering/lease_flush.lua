-- lease_flush.lua: append the usage events of requests a gateway admitted
-- from a credit lease (lease.go), and record how much of the lease they
-- used. The credits were taken when the lease was (lease_take.lua's hold),
-- so these events carry the cost and no bucket amounts. They are appended
-- even when the lease has ended meanwhile (lease_end.lua was given the
-- same total), and a flush run twice appends events with the same ids,
-- which the ledger records once.
--
-- KEYS[1] event stream   KEYS[2] the lease's record
-- ARGV[1] credits of the lease used so far, this batch included
-- ARGV[2] user id   ARGV[3] user name   ARGV[4] project id ('0': none)
-- ARGV[5] project name   then, per request from ARGV[6], four values:
-- event id, time (Unix ms), cost, request label ('' none)
--
-- Answers {0} recorded, {1} the lease had ended: events appended only.

local ended = redis.call('EXISTS', KEYS[2]) == 0
if not ended then
  local used = tonumber(redis.call('HGET', KEYS[2], 'used') or '0')
  if tonumber(ARGV[1]) > used then redis.call('HSET', KEYS[2], 'used', ARGV[1]) end
end
local uid, un, pid, pn = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV, 4 do
  local f = {'id', ARGV[i], 'k', 'usage', 't', ARGV[i + 1], 'u', uid, 'un', un,
    'c', ARGV[i + 2]}
  if pid ~= '0' then f[#f + 1] = 'p'; f[#f + 1] = pid; f[#f + 1] = 'pn'; f[#f + 1] = pn end
  if ARGV[i + 3] ~= '' then f[#f + 1] = 'rq'; f[#f + 1] = ARGV[i + 3] end
  redis.call('XADD', KEYS[1], '*', unpack(f))
end
if ended then return {1} end
return {0}
