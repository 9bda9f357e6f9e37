package metering_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// tokens makes a usage of in input and out output tokens.
func tokens(in, out int64) metering.Units { return metering.Units{InputTokens: in, OutputTokens: out} }

func TestReserveSettleExact(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	// 1M input at 1 + 2M output at 2 = 5 credits.
	r := w.reserve(t, metering.ReserveRequest{Key: key, Model: "m1", Estimate: tokens(1_000_000, 2_000_000), Lease: time.Minute})
	require.Equal(t, metering.Reserved, r.Status)
	require.Equal(t, cr(5), r.Reserved)
	require.Equal(t, metering.Split{Allowance: cr(5)}, r.Taken)
	require.Equal(t, cr(35), r.Remaining)
	s := w.settle(t, r, metering.Outcome{Units: tokens(1_000_000, 2_000_000), Status: 200, Duration: 1500 * time.Millisecond})
	require.Equal(t, metering.SettleResult{Charged: cr(5), Remaining: cr(35)}, s)
	again := w.settle(t, r, metering.Outcome{Refund: true})
	require.Equal(t, metering.SettleResult{AlreadySettled: true}, again)
	require.Equal(t, cr(35), w.view(t, "u").Live.Effective)

	w.drainAndCheck(t)
	uid := w.view(t, "u").ID
	l := w.ledgerUsage(t, uid)
	require.Equal(t, ledgerUsage{events: 1, cost: int64(cr(5))}, l, "the usage event nets nothing: the hold took it all")
	var model string
	var in, out, reserved, status, dur int64
	require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT model, input_units, output_units, reserved, upstream_status, duration_ms
		FROM events WHERE kind = 'usage'`).Scan(&model, &in, &out, &reserved, &status, &dur))
	require.Equal(t, []any{"m1", int64(1_000_000), int64(2_000_000), int64(cr(5)), int64(200), int64(1500)},
		[]any{model, in, out, reserved, status, dur})
	require.Empty(t, w.rollupMismatches(t))
	rows, err := w.Engine.Usage(w.ctx, metering.UsageQuery{From: metering.UTCDay(monday), To: metering.UTCDay(monday).AddDate(0, 0, 1),
		GroupBy: metering.GroupModel})
	require.NoError(t, err)
	require.Equal(t, []metering.UsageRow{{Model: "m1", Requests: 1, Credits: cr(5), Allowance: cr(5)}}, rows)
}

func TestSettleRefundsInReverseOrder(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	r := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(25))})
	require.Equal(t, metering.Split{Allowance: cr(10), Pool: cr(10), Awarded: cr(5)}, r.Taken)
	s := w.settle(t, r, metering.Outcome{Cost: ptr(cr(12)), Status: 200})
	// 13 back: awarded first (its 5), then the pool (8 of its 10), the allowance keeps its 10 spent.
	require.Equal(t, metering.SettleResult{Charged: cr(12), Refunded: cr(13), Remaining: cr(28)}, s)
	u, pb := w.balances(t)
	require.Equal(t, []int64{0, int64(cr(2)), int64(cr(10)), int64(cr(10))}, []int64{u["a"], u["pu"], u["aw"], u["pr"]})
	require.Equal(t, int64(cr(98)), pb)
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	rows, err := w.Engine.Usage(w.ctx, metering.UsageQuery{From: metering.UTCDay(monday), To: metering.UTCDay(monday).AddDate(0, 0, 1)})
	require.NoError(t, err)
	require.Equal(t, []metering.UsageRow{{Requests: 1, Credits: cr(12), Allowance: cr(10), Pool: cr(2)}}, rows,
		"the rollup nets the hold and its settlement")
}

func TestSettleAfterAllowancePeriodRolledForfeits(t *testing.T) {
	t.Parallel()
	for _, refilledFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "refill not yet written", true: "refill already written"}[refilledFirst], func(t *testing.T) {
			t.Parallel()
			w, key := reserveWorld(t)
			r := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(15)), Lease: 48 * time.Hour})
			require.Equal(t, metering.Split{Allowance: cr(10), Pool: cr(5)}, r.Taken)
			w.Clock.Advance(24 * time.Hour)
			if refilledFirst {
				require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
			}
			s := w.settle(t, r, metering.Outcome{Refund: true})
			require.Equal(t, cr(10), s.Forfeited, "the allowance of a past period is not given back")
			require.Equal(t, cr(5), s.Refunded, "the pool gets its part back")
			require.Equal(t, metering.Credits(0), s.Charged)
			_, pb := w.balances(t)
			require.Equal(t, int64(cr(100)), pb)
			want := cr(40) // a fresh allowance 10, pool 10 (new period), awarded 10, purchased 10
			if refilledFirst {
				want -= cr(1)
			}
			require.Equal(t, want, w.view(t, "u").Live.Effective)
			w.drainAndCheck(t)
			require.Empty(t, w.rollupMismatches(t))
			var ff int64
			require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT forfeited FROM events WHERE kind = 'usage' AND reserved IS NOT NULL`).Scan(&ff))
			require.Equal(t, int64(cr(10)), ff)
		})
	}
}

func TestSettleOverrunWithShortfall(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	purchasedOnly := metering.BucketOrder{metering.BucketPurchased}
	r := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(4)), Buckets: purchasedOnly})
	require.Equal(t, metering.Split{Purchased: cr(4)}, r.Taken)
	require.Equal(t, cr(6), r.Remaining, "what the allowed buckets still hold")
	s := w.settle(t, r, metering.Outcome{Cost: ptr(cr(20)), Status: 200})
	require.Equal(t, metering.SettleResult{Charged: cr(10), Overrun: cr(6), Shortfall: cr(10)}, s)
	u, _ := w.balances(t)
	require.Equal(t, []int64{int64(cr(10)), 0, int64(cr(10))}, []int64{u["a"], u["pr"], u["aw"]},
		"an overrun stays within the route's buckets")
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	require.Equal(t, int64(cr(10)), w.pgInt(t, `SELECT shortfall FROM events WHERE kind = 'usage'`))
}

func TestReserveBucketRestriction(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	order, err := metering.ParseBucketOrder([]string{"purchased", "awarded"})
	require.NoError(t, err)
	r := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(12)), Buckets: order})
	require.Equal(t, metering.Split{Purchased: cr(10), Awarded: cr(2)}, r.Taken, "in the route's order")
	r2 := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(9)), Buckets: order})
	require.Equal(t, metering.Insufficient, r2.Status, "the allowance and pool could pay, but the route may not use them")
	require.Equal(t, cr(8), r2.Remaining)
	s := w.settle(t, r, metering.Outcome{Cost: ptr(cr(1))})
	require.Equal(t, cr(11), s.Refunded)
	u, _ := w.balances(t)
	require.Equal(t, []int64{int64(cr(10)), int64(cr(9))}, []int64{u["aw"], u["pr"]}, "refunds in reverse: awarded first, then purchased")
	for _, bad := range [][]string{{"gold"}, {"pool", "pool"}} {
		_, err := metering.ParseBucketOrder(bad)
		require.Error(t, err, "%v", bad)
	}
	w.drainAndCheck(t)
}

func TestReserveUnknownModel(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	r := w.reserve(t, metering.ReserveRequest{Key: key, Model: "nope", Estimate: tokens(10, 10),
		Unknown: metering.UnknownModelPolicy{Reject: true}})
	require.Equal(t, metering.UnknownModel, r.Status)
	r = w.reserve(t, metering.ReserveRequest{Key: key, Model: "nope", Estimate: tokens(1_000_000, 0),
		Unknown: metering.UnknownModelPolicy{Default: metering.Price{InputPerMillion: cr(3)}}})
	require.Equal(t, metering.Reserved, r.Status)
	require.Equal(t, cr(3), r.Reserved)
	s := w.settle(t, r, metering.Outcome{Units: tokens(500_000, 0), Status: 200})
	require.Equal(t, cr(1)+cr(1)/2, s.Charged, "settled at the default price")
	w.drainAndCheck(t)
	require.Equal(t, "nope", func() string {
		var m string
		require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT model FROM events WHERE kind = 'usage'`).Scan(&m))
		return m
	}())
}

func TestPriceChangeDoesNotChangeSettlement(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	r := w.reserve(t, metering.ReserveRequest{Key: key, Model: "m1", Estimate: tokens(1_000_000, 0)})
	require.Equal(t, cr(1), r.Reserved)
	_, err := w.Engine.PutPrice(w.ctx, "test", metering.Price{Model: "m1", InputPerMillion: cr(7)})
	require.NoError(t, err)
	s := w.settle(t, r, metering.Outcome{Units: tokens(2_000_000, 0), Status: 200})
	require.Equal(t, cr(2), s.Charged, "the price of the reservation, not the new one")
	r2 := w.reserve(t, metering.ReserveRequest{Key: key, Model: "m1", Estimate: tokens(1_000_000, 0)})
	require.Equal(t, cr(7), r2.Reserved, "the next request pays the new price")
	w.settle(t, r2, metering.Outcome{Units: tokens(1_000_000, 0)})
	w.drainAndCheck(t)
}

func TestReserveStalePriceVersionRetries(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	// Another gateway changed a price: the version in Redis moved on. The
	// script answers stale, the engine reloads and reserves at the new version.
	// (One shard's: a gateway that sees it raises every shard's.)
	require.NoError(t, w.Redis.Incr(w.ctx, w.Engine.Keys().Shard(0).PriceVersion()).Err())
	r := w.reserve(t, metering.ReserveRequest{Key: key, Model: "m1", Estimate: tokens(1_000_000, 0)})
	require.Equal(t, metering.Reserved, r.Status)
	w.settle(t, r, metering.Outcome{Refund: true})
	w.drainAndCheck(t)
}

func TestRenewLease(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	r := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(1)), Lease: time.Minute})
	require.NoError(t, w.Engine.RenewLease(w.ctx, r, time.Hour))
	w.Clock.Advance(30 * time.Minute) // past the first lease, within the renewed one
	require.ErrorIs(t, w.Engine.DeleteUser(w.ctx, "test", "u"), metering.ErrConflict, "an open reservation is in flight")
	w.Clock.Advance(-30 * time.Minute)
	sh := w.Engine.Keys().ShardOf(userProject(t, w.DB, r.UserID), r.UserID)
	score, err := w.Redis.ZScore(w.ctx, sh.Leases(), r.ID).Result()
	require.NoError(t, err)
	require.Equal(t, float64(monday.Add(time.Hour).UnixMilli()), score)
	w.settle(t, r, metering.Outcome{Refund: true})
	require.ErrorIs(t, w.Engine.RenewLease(w.ctx, r, time.Hour), metering.ErrNotFound)
	n, err := w.Redis.ZCard(w.ctx, sh.Leases()).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a settled reservation leaves no lease")
	w.drainAndCheck(t)
}

func TestReserveRefusedKeyAndZeroEstimate(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	r := w.reserve(t, metering.ReserveRequest{Key: "tg_not-a-key", Fixed: ptr(cr(1))})
	require.Equal(t, metering.KeyRefused, r.Status)
	_, other, err := w.Engine.CreateUser(w.ctx, "test", metering.UserSpec{Username: "gone"})
	require.NoError(t, err)
	require.NoError(t, w.Engine.DeleteUser(w.ctx, "test", "gone"))
	r = w.reserve(t, metering.ReserveRequest{Key: other, Model: "nope", Unknown: metering.UnknownModelPolicy{Reject: true}})
	require.Equal(t, metering.KeyRefused, r.Status, "the key is checked before the model")

	// A zero estimate holds nothing; the whole cost is an overrun.
	r = w.reserve(t, metering.ReserveRequest{Key: key, Model: "m1"})
	require.Equal(t, metering.Reserved, r.Status)
	require.Zero(t, r.Reserved)
	s := w.settle(t, r, metering.Outcome{Units: tokens(1_000_000, 0), Status: 200})
	require.Equal(t, metering.SettleResult{Charged: cr(1), Overrun: cr(1), Remaining: cr(39)}, s)
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	require.Equal(t, int64(1), w.pgInt(t, `SELECT count(*) FROM usage_daily`), "hold and usage share the model's row")
}
