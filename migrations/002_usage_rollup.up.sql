-- Daily usage rollup: what GET /usage reads, so a report never scans the
-- ledger. One row per UTC day, user and project, maintained by the statement
-- that inserts events (store_events.go), from exactly the usage events that
-- statement newly inserted: a replayed event adds nothing.
--
-- Names are kept as text and there are no foreign keys, so the rows outlive
-- deleted users and projects, like the events they summarise. project_id 0
-- and project_name '' stand for "no project" (NULL cannot be in the key).
-- Charged amounts are positive micro-credits.
CREATE TABLE usage_daily (
    day          date   NOT NULL,
    user_id      bigint NOT NULL,
    project_id   bigint NOT NULL DEFAULT 0,
    username     text   NOT NULL,
    project_name text   NOT NULL DEFAULT '',
    requests     bigint NOT NULL DEFAULT 0,
    credits      bigint NOT NULL DEFAULT 0,
    allowance    bigint NOT NULL DEFAULT 0,
    pool         bigint NOT NULL DEFAULT 0,
    awarded      bigint NOT NULL DEFAULT 0,
    purchased    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, project_id)
) WITH (fillfactor = 70); -- room on each page for HOT updates of today's rows
-- Reports filtered by user or project; the primary key serves date ranges.
CREATE INDEX usage_daily_user ON usage_daily (username, day);
CREATE INDEX usage_daily_project ON usage_daily (project_name, day);

-- GET /audit filters by actor or target, newest first.
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_target ON audit_log (target, at);

-- Every reconciler batch updates the balances of the users it saw. With
-- free room on each page those updates are HOT (no index writes), which
-- buys back about what the rollup upsert costs the reconciler.
ALTER TABLE users SET (fillfactor = 80);
