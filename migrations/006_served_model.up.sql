-- The model the upstream said it served, on a usage event whose upstream
-- named another model than the one reserved (model). Such a request is
-- charged at the higher of the two models' prices. NULL: the same model,
-- not reported, or not a variable-cost event. Nullable without a default,
-- so adding it rewrites nothing.
ALTER TABLE events ADD COLUMN served_model text;
