-- renew.lua: move an open reservation's lease deadline, in the lease set
-- and in the user's in-flight set. A settled (or swept) reservation is not
-- brought back to life.
--
-- KEYS[1] the deployment's lease set   KEYS[2] the user's in-flight set
-- ARGV[1] reservation id   ARGV[2] new deadline, Unix ms
--
-- Answers {1} renewed, {0} no such open reservation.

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {1}
