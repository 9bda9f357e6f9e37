-- inflight_count.lua: how many requests of a user are in flight now, i.e.
-- members of its in-flight set whose lease deadline is still ahead.
--
-- KEYS[1] the user's in-flight set   ARGV[1] now, Unix ms
--
-- Answers {count}. A script rather than a plain ZCOUNT so it rides in the
-- same pipeline as the balance peeks of a user listing.

return {redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')}
