-- heal_balances.lua: overwrite a user's or a pool's balances with the
-- ledger's, when healing a Redis that came back without its last writes
-- (heal.go). Only a hash that holds balances is touched: one Redis never
-- loaded is loaded from the ledger on demand anyway, and a deleted user's
-- tombstone stays as it is.
--
-- KEYS[1] user or project hash
-- ARGV field/value pairs; the first field must already be present
--
-- Answers {1} written, {0} left alone.

if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {0} end
if redis.call('HEXISTS', KEYS[1], 'del') == 1 then return {0} end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {1}
