-- deadletter.lua: move stream entries that can never be recorded in
-- Postgres to the dead-letter stream, with the reason, and acknowledge them.
--
-- KEYS[1] event stream   KEYS[2] dead-letter stream
-- ARGV[1] consumer group   ARGV[2] consumer   ARGV[3..] pairs: entry id, reason
--
-- An entry moves only while it is pending for this consumer: one that
-- another consumer claimed meanwhile is that consumer's to judge, and one
-- already acknowledged is done, so no entry is dead-lettered twice. The
-- dead letter carries the entry id, the reason, the consumer and the
-- entry's fields, each name prefixed with "f:" (an entry deleted from the
-- stream before it was read has none).
--
-- Answers the ids moved.

local stream, dead, group, consumer = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
-- unpack() is bounded by Lua's C stack: a corrupt entry with more fields
-- than any event has keeps its first ones.
local maxFields = 200
local moved = {}
for i = 3, #ARGV, 2 do
  local id, reason = ARGV[i], ARGV[i + 1]
  if #redis.call('XPENDING', stream, group, id, id, 1, consumer) > 0 then
    local f = {'entry', id, 'reason', reason, 'consumer', consumer}
    local entry = redis.call('XRANGE', stream, id, id)
    if #entry > 0 then
      local fields = entry[1][2]
      for j = 1, math.min(#fields, 2 * maxFields), 2 do
        f[#f + 1] = 'f:' .. fields[j]
        f[#f + 1] = fields[j + 1]
      end
    end
    redis.call('XADD', dead, '*', unpack(f))
    redis.call('XACK', stream, group, id)
    moved[#moved + 1] = id
  end
end
return moved
