package metering_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestUsageRollupMatchesEvents: the rollup equals the sums over the ledger's
// usage events, per UTC day, user and project, across day boundaries and
// replays of everything already reconciled.
func TestUsageRollupMatchesEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Date(2026, 6, 29, 22, 0, 0, 0, time.UTC))
	keys := someTraffic(t, w, 20)
	keys = append(keys, w.user(t, metering.UserSpec{Username: "c", Project: "p", InitialCredits: cr(40)}))
	stream := w.Engine.Keys().Shard(0).Events()
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
