-- lease_flush.lua: append the usage events of requests a gateway admitted
-- from a credit lease (lease.go), and record how much of the lease they
-- used. The credits were taken when the lease was (lease_take.lua's hold),
-- so these events carry the cost and no bucket amounts. They are appended
-- even when the lease has ended meanwhile (lease_end.lua was given the
-- same total), and a flush run twice appends events with the same ids,
-- which the ledger records once.
--
-- The events go into ONE stream entry (event_pack.go has the layout): the
-- fields they share once, their count, and each event's id, time, cost and
-- request label packed by Go, length-prefixed, into one field. One XADD per
-- flush instead of one per request is most of what a leased request cost
-- Redis, and the reconciler reads, acknowledges and trims one entry.
--
-- KEYS[1] event stream   KEYS[2] the lease's record
-- ARGV[1] credits of the lease used so far, this batch included
-- ARGV[2] user id   ARGV[3] user name   ARGV[4] project id ('0': none)
-- ARGV[5] project name   ARGV[6] number of events   ARGV[7] the events, packed
--
-- Answers {0} recorded, {1} the lease had ended: events appended only.

local ended = redis.call('EXISTS', KEYS[2]) == 0
if not ended then
  local used = tonumber(redis.call('HGET', KEYS[2], 'used') or '0')
  if tonumber(ARGV[1]) > used then redis.call('HSET', KEYS[2], 'used', ARGV[1]) end
end
if ARGV[4] ~= '0' then
  redis.call('XADD', KEYS[1], '*', 'k', 'usage', 'u', ARGV[2], 'un', ARGV[3], 'p', ARGV[4], 'pn', ARGV[5],
    'n', ARGV[6], 'ev', ARGV[7])
else
  redis.call('XADD', KEYS[1], '*', 'k', 'usage', 'u', ARGV[2], 'un', ARGV[3], 'n', ARGV[6], 'ev', ARGV[7])
end
if ended then return {1} end
return {0}
