-- Variable-cost requests (issue 4): a reservation appends a 'hold' event
-- (the estimate taken from the buckets), its settlement a 'usage' event
-- (refunds or overrun, and what the request was). These columns describe
-- them; every other event leaves them NULL. Nullable without defaults, so
-- adding them rewrites nothing.
ALTER TABLE events
    ADD COLUMN model           text,   -- priced model; NULL for fixed-cost requests
    ADD COLUMN input_units     bigint, -- tokens, characters or audio ms, by the model's price
    ADD COLUMN output_units    bigint, -- tokens or images
    ADD COLUMN reserved        bigint, -- the estimate the hold took
    ADD COLUMN upstream_status int,    -- upstream HTTP status; 0 connection failure
    ADD COLUMN duration_ms     bigint,
    ADD COLUMN shortfall       bigint, -- cost the buckets could not cover at settlement
    ADD COLUMN forfeited       bigint; -- refund not given back: its allowance period had ended

-- The rollup gains a model dimension ('' for fixed-cost usage: NULL cannot
-- be in the key). Existing rows are all fixed-cost usage.
ALTER TABLE usage_daily ADD COLUMN model text NOT NULL DEFAULT '';
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey,
    ADD PRIMARY KEY (day, user_id, project_id, model);
