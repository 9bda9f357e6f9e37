-- Operations between Redis shards (redis_shards > 1).
--
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

-- A user moved to a project in another shard leaves its old shard (its
-- hash there becomes a tombstone naming the move) and enters the new one
-- (its hash copied, then the move applied as within a shard). The move is
-- written here first and removed once Postgres has committed it; the
-- sweeper finishes (or undoes, when Postgres never committed it) the moves
-- a crashed gateway left: metering/move_shards.go.
CREATE TABLE pending_moves (
    move_id      text PRIMARY KEY,
    user_id      bigint NOT NULL,
    from_project bigint NOT NULL, -- 0: none
    to_project   bigint NOT NULL,
    new_version  bigint NOT NULL,
    actor        text NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX pending_moves_by_age ON pending_moves (created_at);
