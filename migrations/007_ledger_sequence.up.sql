-- The order in which events reach the ledger, so a Redis that comes back
-- without its last writes (an OS crash under appendfsync everysec, a
-- failover to a replica that lagged) can be healed: Redis keeps the
-- sequence value up to which it is known to reflect the ledger
-- ({prefix}:ckpt, raised by the reconciler after each batch), and the
-- users and pools of every event after it are reloaded from the ledger
-- (metering/heal.go).
--
-- An event's number is drawn when it is inserted, which is always after
-- the Redis script that made it has run. Existing rows keep NULL (they are
-- older than any checkpoint). BRIN, not B-tree: numbers grow with the
-- table's physical order, and the index costs inserts almost nothing.
CREATE SEQUENCE events_seq;
ALTER TABLE events ADD COLUMN seq bigint;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq');
CREATE INDEX events_seq_brin ON events USING brin (seq);
