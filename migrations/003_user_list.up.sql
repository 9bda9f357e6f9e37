-- Indexes behind GET /users' sorted, filtered, keyset-paginated listing.
-- Each matches an ORDER BY in metering/store_user_list.go exactly (the
-- expressions must be written the same way there), with username as the
-- unique tie-breaker, so a page is one index range scan from the cursor.
--
-- Cost: the reconciler's balance updates now touch indexed columns, so
-- they are no longer HOT updates. It updates each active user at most once
-- per batch, which keeps that cheap.

-- sort=-credits: personal credits as the ledger has them.
CREATE INDEX users_personal_credits ON users ((awarded + purchased) DESC, username);

-- sort=-activity: most recent first, never-used users last.
CREATE INDEX users_last_activity ON users ((coalesce(last_activity_at, '-infinity'::timestamptz)) DESC, username);

-- project filter with the default sort (and project=none via project_id IS NULL).
CREATE INDEX users_project_username ON users (project_id, username);
