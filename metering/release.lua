-- release.lua: a request is done; drop it from its user's in-flight set,
-- and with it any member whose lease has already run out (a gateway that
-- died mid-request), so the set stays as small as the live requests.
--
-- KEYS[1] the user's in-flight set
-- ARGV[1] member (the charge's event id)   ARGV[2] now, Unix ms
--
-- Answers {members removed}.

local n = redis.call('ZREM', KEYS[1], ARGV[1])
n = n + redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
return {n}
