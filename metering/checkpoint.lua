-- checkpoint.lua: record that Redis reflects every ledger event numbered
-- up to ARGV[1] (heal.go). Only ever raised: reconcilers of several
-- gateways finish their batches in any order.
--
-- KEYS[1] the checkpoint key   ARGV[1] ledger sequence number
--
-- Answers the checkpoint after the call.

local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if new > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return new
end
return cur
