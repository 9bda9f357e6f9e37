-- One-time invite links (issue 9): an admin creates an invite for a user
-- and sends its link; whoever opens it first gets a fresh API key for that
-- user (the previous key stops working), so keys never travel by e-mail.
--
-- Only the SHA-256 of the token (hex) is stored: a leaked table cannot be
-- turned into working links. The invite points at the user's stable id,
-- so a rename keeps it, and deleting the user deletes its invites.
-- Times come from the engine's clock, like every other time it writes.
CREATE TABLE invites (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
    claimed_at   timestamptz,
    revoked_at   timestamptz
);
-- The pending invites of a user, newest first (expiry is checked on the rows).
CREATE INDEX invites_pending_by_user ON invites (user_id, created_at DESC)
    WHERE claimed_at IS NULL AND revoked_at IS NULL;
