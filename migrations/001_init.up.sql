-- Tollgate's durable state. Redis is the serialization point for balances;
-- these tables are the ledger and the configuration it is reloaded from.
-- Amounts are bigint micro-credits (1 credit = 1,000,000).

CREATE TABLE projects (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    allowance_amount    bigint NOT NULL DEFAULT 0 CHECK (allowance_amount >= 0),
    allowance_period    text NOT NULL DEFAULT 'none'
                        CHECK (allowance_period IN ('none', 'daily', 'weekly', 'monthly')),
    timezone            text NOT NULL DEFAULT 'UTC',
    pool_enabled        boolean NOT NULL DEFAULT false,
    -- Updated only from pool events by the reconciler (or the admin API applying its own event).
    pool_balance        bigint NOT NULL DEFAULT 0,
    pool_per_user_limit bigint CHECK (pool_per_user_limit >= 0),
    -- Bumped on every settings change so gateways notice cached settings are stale.
    version             bigint NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    project_id          bigint REFERENCES projects (id),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    -- Balances, updated from events. Each equals Redis minus unreconciled events.
    awarded             bigint NOT NULL DEFAULT 0,
    purchased           bigint NOT NULL DEFAULT 0,
    allowance_remaining bigint NOT NULL DEFAULT 0,
    allowance_period    bigint NOT NULL DEFAULT -1, -- Unix second the allowance period began; -1 never refilled
    pool_used           bigint NOT NULL DEFAULT 0,  -- drawn from the pool in that period
    monthly_grant       bigint NOT NULL DEFAULT 0 CHECK (monthly_grant >= 0),
    grant_month         bigint NOT NULL DEFAULT 0,  -- year*12+month-1 of the last grant paid
    partner             boolean NOT NULL DEFAULT false,
    -- Bumped on every change of name, project, status or key, for the same reason.
    version             bigint NOT NULL DEFAULT 1,
    last_activity_at    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_project_id ON users (project_id);

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lookup_hash   bytea NOT NULL UNIQUE,  -- HMAC-SHA256(pepper, key)
    display_prefix text NOT NULL,         -- "tg_3fA9"
    sealed        bytea,                  -- AES-GCM(nonce||ciphertext) when a key_encryption_key is set
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
-- At most one live key per user.
CREATE UNIQUE INDEX api_keys_live_per_user ON api_keys (user_id) WHERE revoked_at IS NULL;

-- The ledger. Rows keep user and project names as text and carry no foreign
-- keys, so usage history outlives deleted users and projects.
CREATE TABLE events (
    event_id         text COLLATE "C" PRIMARY KEY, -- byte order: cheaper comparisons than a locale collation
    kind             text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    user_id          bigint,
    username         text,
    project_id       bigint,
    project_name     text,
    cost             bigint NOT NULL DEFAULT 0,   -- what a usage event charged in total
    d_allowance      bigint NOT NULL DEFAULT 0,   -- signed change per bucket
    d_pool           bigint NOT NULL DEFAULT 0,
    d_awarded        bigint NOT NULL DEFAULT 0,
    d_purchased      bigint NOT NULL DEFAULT 0,
    d_pool_used      bigint NOT NULL DEFAULT 0,   -- change of the user's pool draw this period
    allowance_period bigint,                      -- set by refills
    grant_month      bigint,                      -- set by grants
    request          text,                        -- e.g. "POST /v1/chat/completions"
    actor            text,                        -- admin token name for admin writes
    note             text,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
-- Reports read a rollup (later migration), so the ledger carries no secondary index that would slow every insert.

CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
