-- Per-model prices for variable-cost metering (issue 4). Rates are
-- micro-credits, bounded like every other amount (below 2^53, so Lua's
-- doubles hold them exactly).
CREATE TABLE prices (
	model              text PRIMARY KEY,
	input_per_million  bigint NOT NULL DEFAULT 0 CHECK (input_per_million BETWEEN 0 AND 9007199254740991),
	output_per_million bigint NOT NULL DEFAULT 0 CHECK (output_per_million BETWEEN 0 AND 9007199254740991),
	per_character      bigint NOT NULL DEFAULT 0 CHECK (per_character BETWEEN 0 AND 9007199254740991),
	per_second         bigint NOT NULL DEFAULT 0 CHECK (per_second BETWEEN 0 AND 9007199254740991),
	per_image          bigint NOT NULL DEFAULT 0 CHECK (per_image BETWEEN 0 AND 9007199254740991),
	per_request        bigint NOT NULL DEFAULT 0 CHECK (per_request BETWEEN 0 AND 9007199254740991),
	-- The table version that last wrote this row.
	version            bigint NOT NULL,
	updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The version of the whole price table: one row, incremented by every put
-- and delete in the same transaction. Its row lock serializes price writes,
-- so versions are committed in order; gateways mirror it into Redis
-- ({prefix}:prices:v) to tell when their in-process copy is stale.
CREATE TABLE price_table_version (
	id      boolean PRIMARY KEY DEFAULT true CHECK (id),
	version bigint NOT NULL
);
INSERT INTO price_table_version (id, version) VALUES (true, 0);
