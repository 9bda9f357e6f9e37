-- recall.lua: an admin change recalls the credit leases of some users, or
-- of every user of a project: the recall is appended to the stream every
-- gateway reads (lease_gateway.go), and the gateways alive now are named,
-- so the caller waits for each to acknowledge or to stop being alive.
--
-- KEYS[1] the deployment's gateway set   KEYS[2] the recall stream
-- ARGV[1] recall id   ARGV[2] user ids, comma separated ('' none)
-- ARGV[3] project id ('' none)
--
-- Answers {now (Unix ms, Redis's clock), gateway ids alive...}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'r', ARGV[1], 'u', ARGV[2], 'p', ARGV[3])
local out = {now}
for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  out[#out + 1] = g
end
return out
