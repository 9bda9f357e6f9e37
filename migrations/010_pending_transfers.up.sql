-- Transfers between users whose Redis keys are in different shards
-- (redis_shards > 1) take two steps, one script in each shard: the debit,
-- then the credit. Each transfer is written here before its first step
-- and removed in the transaction that records both events, so a gateway
-- killed between the steps leaves a row the sweeper finishes (every step
-- is idempotent: see metering/transfer_shards.go).
CREATE TABLE pending_transfers (
    out_id     text PRIMARY KEY,
    in_id      text NOT NULL UNIQUE,
    from_user  bigint NOT NULL,
    to_user    bigint NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    actor      text NOT NULL,
    note       text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX pending_transfers_by_age ON pending_transfers (created_at);
