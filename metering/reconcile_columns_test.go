package metering_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestReconcilerRecordsEveryColumn: the reconciler encodes the ledger's
// COPY rows itself (binary format), so every column of every kind of event
// is checked as Postgres stored it: values, NULLs where an event leaves a
// column empty, the first and last instants the ledger takes, and the
// same through the staging table a replayed batch goes through. The users
// and projects named do not exist, so no balance moves.
func TestReconcilerRecordsEveryColumn(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	const at = "1772409600123" // 2026-03-02 00:00:00.123 UTC
	w.xadd(t, "id", "col-usage", "k", "usage", "t", at, "u", "987654", "un", "amy", "p", "876543", "pn", "lab",
		"c", "1500", "a", "-100", "pl", "-200", "pu", "200", "aw", "-300", "pr", "-900", "rq", "POST /v1/chat",
		"m", "gpt", "iu", "10", "ou", "20", "rs", "2000", "ms", "35", "st", "200", "sf", "5", "ff", "7", "rm", "gpt-x")
	w.xadd(t, "id", "col-hold", "k", "hold", "t", at, "u", "987654", "un", "amy", "m", "gpt", "rs", "2000", "a", "-2000")
	w.xadd(t, "id", "col-refill", "k", "refill", "t", "253402300799999", "u", "987654", "a", "5000", "ap", "1700000000")
	w.xadd(t, "id", "col-pool", "k", "pool", "t", "0", "p", "876543", "pn", "lab", "pl", "10000", "ac", "ops", "no", "top up")
	w.xadd(t, "id", "col-grant", "k", "grant", "t", at, "u", "987654", "aw", "100", "gm", "24315")
	w.xadd(t, "id", "col-status0", "k", "usage", "t", at, "u", "987654", "un", "amy", "c", "-4", "rs", "0", "st", "0")
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "columns"})
	require.Equal(t, 6, runUntilIdle(t, r))
	want := map[string]string{
		"col-usage": "'usage'|'2026-03-02 00:00:00.123'|'987654'|'amy'|'876543'|'lab'|'1500'|'-100'|'-200'|'-300'|'-900'|'200'|" +
			"NULL|NULL|'POST /v1/chat'|NULL|NULL|'gpt'|'10'|'20'|'2000'|'200'|'35'|'5'|'7'|'gpt-x'",
		"col-hold": "'hold'|'2026-03-02 00:00:00.123'|'987654'|'amy'|NULL|NULL|'0'|'-2000'|'0'|'0'|'0'|'0'|" +
			"NULL|NULL|NULL|NULL|NULL|'gpt'|NULL|NULL|'2000'|NULL|NULL|NULL|NULL|NULL",
		"col-refill": "'refill'|'9999-12-31 23:59:59.999'|'987654'|NULL|NULL|NULL|'0'|'5000'|'0'|'0'|'0'|'0'|" +
			"'1700000000'|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
		"col-pool": "'pool'|'1970-01-01 00:00:00'|NULL|NULL|'876543'|'lab'|'0'|'0'|'10000'|'0'|'0'|'0'|" +
			"NULL|NULL|NULL|'ops'|'top up'|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
		"col-grant": "'grant'|'2026-03-02 00:00:00.123'|'987654'|NULL|NULL|NULL|'0'|'0'|'0'|'100'|'0'|'0'|" +
			"NULL|'24315'|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
		"col-status0": "'usage'|'2026-03-02 00:00:00.123'|'987654'|'amy'|NULL|NULL|'-4'|'0'|'0'|'0'|'0'|'0'|" +
			"NULL|NULL|NULL|NULL|NULL|NULL|'0'|'0'|'0'|'0'|'0'|'0'|'0'|NULL",
	}
	require.Equal(t, want, ledgerRows(t, w))

	// A replay of the same entries beside a new one: the COPY meets ids the
	// ledger holds, and the batch goes through the staging table.
	w.xadd(t, "id", "col-usage", "k", "usage", "t", at, "u", "987654", "c", "99999")
	w.xadd(t, "id", "col-new", "k", "usage", "t", at, "u", "987654", "un", "amy", "c", "3", "a", "-3", "rq", "GET /")
	require.Equal(t, 2, runUntilIdle(t, r))
	want["col-new"] = "'usage'|'2026-03-02 00:00:00.123'|'987654'|'amy'|NULL|NULL|'3'|'-3'|'0'|'0'|'0'|'0'|" +
		"NULL|NULL|'GET /'|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL"
	require.Equal(t, want, ledgerRows(t, w), "the replayed event kept as first recorded")
}

// ledgerRows is the ledger's test events (ids col-…), every column after
// the id as %L literals, the time in UTC.
func ledgerRows(t *testing.T, w *world) map[string]string {
	t.Helper()
	rows, err := w.DB.Query(w.ctx, `SELECT event_id, format(
		'%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L|%L',
		kind, occurred_at AT TIME ZONE 'UTC', user_id, username, project_id, project_name, cost,
		d_allowance, d_pool, d_awarded, d_purchased, d_pool_used, allowance_period, grant_month,
		request, actor, note, model, input_units, output_units, reserved, upstream_status,
		duration_ms, shortfall, forfeited, served_model)
		FROM events WHERE event_id LIKE 'col-%'`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, row string
		require.NoError(t, rows.Scan(&id, &row))
		out[id] = row
	}
	require.NoError(t, rows.Err())
	return out
}
