-- ack.lua: acknowledge a reconciled batch and trim the stream, atomically.
--
-- KEYS[1] event stream
-- ARGV[1] consumer group   ARGV[2..] entry ids now durable in Postgres (the
-- reconciler sends none: it acknowledges with plain XACKs first, which is
-- cheaper than passing thousands of ids through Lua, and calls this to trim)
--
-- Trimming is safe only below the oldest entry still pending in the group
-- (or, with nothing pending, up to the last delivered entry). Read as
-- separate commands, another gateway's XREADGROUP could slip in between
-- the pending check and the trim and have its freshly delivered, not yet
-- applied entries deleted; a failed transaction would then lose them. In
-- one script nothing slips in.
--
-- Answers the number of entries acknowledged.

local stream, group = KEYS[1], ARGV[1]
local acked = 0
-- unpack() is bounded by Lua's C stack: acknowledge in chunks.
local chunk = 1000
for i = 2, #ARGV, chunk do
  acked = acked + redis.call('XACK', stream, group, unpack(ARGV, i, math.min(i + chunk - 1, #ARGV)))
end

local minid
local pending = redis.call('XPENDING', stream, group)
if pending[1] > 0 then
  minid = pending[2]
else
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    if name == group and last then
      -- The id just after the last delivered one: every delivered entry goes.
      local ms, seq = string.match(last, '^(%d+)-(%d+)$')
      minid = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
    end
  end
end
if minid then redis.call('XTRIM', stream, 'MINID', minid) end
return acked
