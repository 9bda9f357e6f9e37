-- Raises the price table version mirrored from Postgres; never lowers it.
-- KEYS[1] = {p}:prices:v   ARGV[1] = the Postgres version just committed or loaded
-- Returns the version the key holds afterwards.
--
-- Setting the Postgres version (rather than INCR) keeps the key equal to
-- Postgres on every gateway: a cold or flushed Redis is seeded with the same
-- number by whichever gateway gets there first. Never lowering it keeps a
-- slow writer from undoing a newer one.
local v = tonumber(ARGV[1])
if not v or v < 0 then
  return redis.error_reply('bad version')
end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur < v then
  redis.call('SET', KEYS[1], string.format('%d', v))
  return v
end
return cur
