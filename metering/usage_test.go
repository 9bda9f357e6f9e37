package metering_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// rollupMismatches compares the daily rollup with the same sums computed
// from the ledger's usage and hold events (requests and credits from usage
// events only, bucket columns netting both); it returns the rows that differ.
func (w *world) rollupMismatches(t testing.TB) []string {
	t.Helper()
	rows, err := w.DB.Query(w.ctx, `
		WITH from_events AS (
			SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, user_id, coalesce(project_id, 0) AS project_id,
				coalesce(model, '') AS model, max(username) AS username, coalesce(max(project_name), '') AS project_name,
				count(*) FILTER (WHERE kind = 'usage') AS requests, coalesce(sum(cost) FILTER (WHERE kind = 'usage'), 0) AS credits,
				-sum(d_allowance) AS allowance, -sum(d_pool) AS pool, -sum(d_awarded) AS awarded, -sum(d_purchased) AS purchased
			FROM events WHERE kind IN ('usage', 'hold') GROUP BY 1, 2, 3, 4),
		rollup AS (
			SELECT day, user_id, project_id, model, username, project_name, requests::numeric, credits::numeric,
				allowance::numeric, pool::numeric, awarded::numeric, purchased::numeric FROM usage_daily)
		(SELECT 'events', * FROM (SELECT * FROM from_events EXCEPT SELECT * FROM rollup) a)
		UNION ALL
		(SELECT 'rollup', * FROM (SELECT * FROM rollup EXCEPT SELECT * FROM from_events) b)`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		out = append(out, fmt.Sprint(v...))
	}
	require.NoError(t, rows.Err())
	return out
}

// TestUsageRollupMatchesEvents: the rollup equals the sums over the ledger's
// usage events, per UTC day, user and project, across day boundaries and
// replays of everything already reconciled.
func TestUsageRollupMatchesEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Date(2026, 6, 29, 22, 0, 0, 0, time.UTC))
	keys := someTraffic(t, w, 20)
	keys = append(keys, w.user(t, metering.UserSpec{Username: "c", Project: "p", InitialCredits: cr(40)}))
	stream := w.Engine.Keys().Events()
	for day := 0; day < 3; day++ {
		for i := 0; i < 30; i++ {
			res := w.charge(t, keys[i%3], metering.Credits(100_000+i*37_000))
			require.Equal(t, metering.Charged, res.Status)
			w.Clock.Advance(17 * time.Minute)
		}
		// Reconcile part way, then replay everything seen so far.
		entries, err := w.Redis.XRange(w.ctx, stream, "-", "+").Result()
		require.NoError(t, err)
		w.Drain(t)
		for _, m := range entries {
			require.NoError(t, w.Redis.XAdd(w.ctx, &redis.XAddArgs{Stream: stream, Values: m.Values}).Err())
		}
		w.Drain(t)
		w.Clock.Advance(20 * time.Hour)
	}
	require.Empty(t, w.rollupMismatches(t))
	require.Equal(t, int64(110), w.pgInt(t, `SELECT sum(requests) FROM usage_daily`))
	require.GreaterOrEqual(t, w.pgInt(t, `SELECT count(DISTINCT day) FROM usage_daily`), int64(3))
	w.AssertConsistent(t)
}
