-- What a user left in each project it moved out of (issue 8): the
-- allowance, the allowance period it belongs to and the pool drawn in that
-- period, so that a user who comes back within the same period resumes
-- them instead of getting a fresh allowance and pool draw (moves must
-- never create credits; metering/patch_user.lua has the rules).
--
-- Maintained like every balance, from events only (metering/store_events.go):
-- a 'park' event (the user leaves the project) adds its amounts and
-- parked + 1, a 'resume' event (the user comes back) subtracts them and
-- parked - 1, and the period is kept with greatest(). So a row is the sum
-- of its events whatever order they are applied in; parked is 1 while the
-- user holds the entry, 0 once taken back (the amounts are then 0 too).
-- Redis holds the entries with parked = 1 in the user hash's field 'x'.
--
-- No foreign keys: like events, rows may outlive their user or project
-- (ids are never reused, so such a row is inert), and a replayed event
-- must not fail the ledger.
CREATE TABLE parked_allowances (
    user_id             bigint NOT NULL,
    project_id          bigint NOT NULL,
    allowance_remaining bigint NOT NULL DEFAULT 0,
    allowance_period    bigint NOT NULL DEFAULT -1, -- Unix second its period began; -1 never refilled
    pool_used           bigint NOT NULL DEFAULT 0,
    parked              integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, project_id)
);
