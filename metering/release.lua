-- release.lua: requests are done; drop each from its user's in-flight set,
-- and with them any member whose lease has already run out (a gateway
-- that died mid-request), so the sets stay as small as the live requests.
-- One call carries every release queued since the last pipeline.
--
-- KEYS[i] a user's in-flight set (all under the deployment's hash tag)
-- ARGV[1] now, Unix ms   ARGV[i+1] the member to remove from KEYS[i]
--         (as the tracked charge or reserve.lua wrote it; Lease.member)
--
-- Answers {members removed}.

local now, n = ARGV[1], 0
for i, key in ipairs(KEYS) do
  n = n + redis.call('ZREM', key, ARGV[i + 1])
  n = n + redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
end
return {n}
