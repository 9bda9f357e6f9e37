-- deadletter.lua: move stream entries that can never be recorded in
-- Postgres to the dead-letter stream, with the reason, and acknowledge them.
--
-- KEYS[1] event stream   KEYS[2] dead-letter stream
-- ARGV[1] consumer group   ARGV[2] consumer   ARGV[3..] triples: entry id,
-- index, reason. The index is '' for an entry dead-lettered whole, or the
-- position of the one event of a packed entry (event_pack.go) dead-lettered
-- alone, whose other events are recorded; one entry may come several times,
-- once per such event.
--
-- An entry moves only while it is pending for this consumer: one that
-- another consumer claimed meanwhile is that consumer's to judge, and one
-- already acknowledged is done, so no entry is dead-lettered twice. Each
-- entry's pending state is read once, before any is acknowledged (after
-- all are moved), so every letter of one entry moves. The dead letter
-- carries the entry id, the index when there is one, the reason, the
-- consumer and the entry's fields, each name prefixed with "f:" (an entry
-- deleted from the stream before it was read has none).
--
-- Answers the ids moved (an entry once per letter).

local stream, dead, group, consumer = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
-- unpack() is bounded by Lua's C stack: a corrupt entry with more fields
-- than any event has keeps its first ones.
local maxFields = 200
local pending, order = {}, {}
local moved = {}
for i = 3, #ARGV, 3 do
  local id, index, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if pending[id] == nil then
    pending[id] = #redis.call('XPENDING', stream, group, id, id, 1, consumer) > 0
    order[#order + 1] = id
  end
  if pending[id] then
    local f = {'entry', id}
    if index ~= '' then f[#f + 1] = 'index'; f[#f + 1] = index end
    f[#f + 1] = 'reason'; f[#f + 1] = reason
    f[#f + 1] = 'consumer'; f[#f + 1] = consumer
    local entry = redis.call('XRANGE', stream, id, id)
    if #entry > 0 then
      local fields = entry[1][2]
      for j = 1, math.min(#fields, 2 * maxFields), 2 do
        f[#f + 1] = 'f:' .. fields[j]
        f[#f + 1] = fields[j + 1]
      end
    end
    redis.call('XADD', dead, '*', unpack(f))
    moved[#moved + 1] = id
  end
end
for _, id in ipairs(order) do
  if pending[id] then redis.call('XACK', stream, group, id) end
end
return moved
