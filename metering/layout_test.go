package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A deployment that changes its shard count (all gateways stopped and
// started with the new redis_shards) finds its state where it left it:
// what the old layout's streams held reaches the ledger, the old keys are
// gone, balances load from the ledger, an open reservation is restored
// into its new shard and settled there, and Redis and Postgres agree.
// Then back to one shard, the layout of every deployment before shards.
func TestShardCountChangeMovesTheKeys(t *testing.T) {
	t.Parallel()
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(monday), RedisShards: 1})
	w := &world{Bundle: b, ctx: context.Background()}
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(5), Period: metering.PeriodDaily,
		PoolEnabled: true, PoolBalance: cr(20)})
	ann := w.user(t, metering.UserSpec{Username: "ann", Project: "p", InitialCredits: cr(10)})
	bob := w.user(t, metering.UserSpec{Username: "bob", Purchased: cr(10)})
	for i := 0; i < 3; i++ {
		require.Equal(t, metering.Charged, w.charge(t, ann, cr(2)).Status)
		require.Equal(t, metering.Charged, w.charge(t, bob, cr(1)).Status)
	}
	open := w.reserve(t, metering.ReserveRequest{Key: ann, Fixed: ptr(cr(4)), Lease: time.Minute})
	require.Equal(t, metering.Reserved, open.Status)
	require.Positive(t, w.streamLen(t), "events not yet in the ledger")
	annBefore, bobBefore := w.view(t, "ann").Live, w.view(t, "bob").Live

	w4 := &world{Bundle: b.WithShards(t, 4), ctx: w.ctx}
	require.Zero(t, w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`)-6, "the old stream reached the ledger")
	n, err := w4.Redis.Exists(w4.ctx, "{"+b.Prefix+"}:events", "{"+b.Prefix+"}:leases").Result()
	require.NoError(t, err)
	require.Zero(t, n, "the old layout's keys are gone")
	require.Equal(t, annBefore, w4.view(t, "ann").Live)
	require.Equal(t, bobBefore, w4.view(t, "bob").Live)

	// The reservation's gateway is gone (stopped for the change): the
	// sweeper settles the restored reservation when its lease ends.
	w4.Clock.Advance(2 * time.Minute)
	sw, err := w4.Engine.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund})
	require.NoError(t, err)
	swept, err := sw.RunOnce(w4.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, swept)
	require.Equal(t, annBefore.Effective+cr(4), w4.view(t, "ann").Live.Effective, "refunded")
	require.Equal(t, metering.Charged, w4.charge(t, bob, cr(1)).Status)
	w4.drainAndCheck(t)

	w1 := &world{Bundle: w4.WithShards(t, 1), ctx: w.ctx}
	require.Equal(t, w4.view(t, "ann").Live, w1.view(t, "ann").Live)
	require.Equal(t, metering.Charged, w1.charge(t, ann, cr(1)).Status)
	w1.drainAndCheck(t)
}
