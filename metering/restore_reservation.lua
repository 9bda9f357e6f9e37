-- restore_reservation.lua: bring back a reservation Redis lost although
-- its hold is in the ledger (heal.go), so that its settlement, by the
-- gateway that is still serving the request or by the sweeper, has
-- something to settle. Nothing is written when the key exists: the
-- reservation is there, or was cancelled (a marker).
--
-- KEYS[1] reservation hash   KEYS[2] the deployment's lease set
-- KEYS[3] the user's in-flight set
-- ARGV[1] reservation id   ARGV[2] lease deadline, Unix ms
-- ARGV[3..] the reservation's field/value pairs (see reserve.lua)
--
-- Answers {1} restored, {0} left alone.

if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {1}
