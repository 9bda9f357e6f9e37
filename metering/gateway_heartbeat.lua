-- gateway_heartbeat.lua: a gateway that admits requests from credit leases
-- says it is alive, until now + ttl by Redis's clock. An admin call that
-- recalls leases (recall.lua) waits for every gateway alive by this set,
-- so the heartbeat is renewed only when the gateway has handled every
-- recall so far: a gateway that missed one (its reader fell behind or lost
-- its connection) cannot stay alive without it, and stops admitting from
-- leases when its heartbeat runs out (lease_gateway.go).
--
-- KEYS[1] the deployment's gateway set (gateway id → alive until, Unix ms)
-- KEYS[2] the recall stream
-- ARGV[1] gateway id   ARGV[2] ttl, ms
-- ARGV[3] id of the last recall entry the gateway has handled
--
-- Answers {0, alive until} renewed, {1, id of the newest recall}: not
-- renewed, the gateway must first handle the recalls after ARGV[3].

local function after(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end

local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] and after(last[1][1], ARGV[3]) then return {1, last[1][1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], alive, ARGV[1])
-- Gateways gone for a minute are forgotten.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
return {0, alive}
