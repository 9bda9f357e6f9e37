-- cancel_reserve.lua: the first half of cancelling a reservation whose
-- answer the gateway lost: find out whether it ran, and if it has not,
-- make sure it never will (reserve.lua refuses when its
-- reservation key exists). A reservation that ran is then settled as a
-- refund by the caller (settle.lua), which is idempotent.
--
-- KEYS[1] the reservation's key   ARGV[1] seconds the marker lives
--
-- Answers {1} the reservation ran (settle it), {0} it had not run, or was
-- settled or cancelled before: nothing to give back.

if redis.call('HEXISTS', KEYS[1], 'u') == 1 then return {1} end
redis.call('HSET', KEYS[1], 'x', '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {0}
