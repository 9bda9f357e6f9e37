package metering_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func cr(credits int64) metering.Credits { return metering.Credits(credits) * metering.Micro }

func ptr[T any](v T) *T { return &v }

var monday = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func TestWaterfallSplitsAcrossBuckets(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "school", AllowanceAmount: cr(10), Period: metering.PeriodDaily,
		PoolEnabled: true, PoolBalance: cr(5)})
	key := w.user(t, metering.UserSpec{Username: "ann", Project: "school", InitialCredits: cr(3), Purchased: cr(4)})

	// 10 allowance + 5 pool + 3 awarded + 4 purchased = 22 effective.
	require.Equal(t, cr(22), w.view(t, "ann").Live.Effective)

	res := w.charge(t, key, cr(8))
	require.Equal(t, metering.Charged, res.Status)
	require.Equal(t, metering.Split{Allowance: cr(8)}, res.Taken)
	require.Equal(t, cr(14), res.Remaining)

	res = w.charge(t, key, cr(9)) // 2 allowance, 5 pool, 2 awarded
	require.Equal(t, metering.Split{Allowance: cr(2), Pool: cr(5), Awarded: cr(2)}, res.Taken)

	res = w.charge(t, key, cr(5)) // 1 awarded + 4 purchased is exactly 5
	require.Equal(t, metering.Split{Awarded: cr(1), Purchased: cr(4)}, res.Taken)
	require.Equal(t, metering.Credits(0), res.Remaining)

	res = w.charge(t, key, 1)
	require.Equal(t, metering.Insufficient, res.Status)
	require.Equal(t, metering.Credits(0), res.Remaining)

	w.Drain(t)
	w.AssertConsistent(t)
	p, err := w.Engine.GetProject(w.ctx, "school")
	require.NoError(t, err)
	require.Equal(t, metering.Credits(0), p.PoolBalance)
}

func TestRejectedChargeTakesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(1), Period: metering.PeriodDaily, PoolEnabled: true, PoolBalance: cr(1)})
	key := w.user(t, metering.UserSpec{Username: "bob", Project: "p", InitialCredits: cr(1)})
	res := w.charge(t, key, cr(4))
	require.Equal(t, metering.Insufficient, res.Status)
	require.Equal(t, cr(3), res.Remaining, "effective credits are reported")
	v := w.view(t, "bob")
	require.Equal(t, cr(3), v.Live.Effective)
	require.Equal(t, cr(1), v.Live.Awarded)
	w.Drain(t)
	w.AssertConsistent(t)
}

func TestPoolPerUserLimitPerPeriod(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "p", Period: metering.PeriodDaily, PoolEnabled: true,
		PoolBalance: cr(100), PoolPerUserLimit: ptr(cr(3))})
	a := w.user(t, metering.UserSpec{Username: "a", Project: "p", Purchased: cr(10)})
	b := w.user(t, metering.UserSpec{Username: "b", Project: "p"})

	res := w.charge(t, a, cr(5))
	require.Equal(t, metering.Split{Pool: cr(3), Purchased: cr(2)}, res.Taken, "pool capped at the per-user limit")
	require.Equal(t, cr(8), res.Remaining)
	require.Equal(t, metering.Credits(0), w.view(t, "a").Live.PoolAvailable)
	require.Equal(t, cr(3), w.view(t, "b").Live.PoolAvailable, "the limit is per user")
	require.Equal(t, metering.Insufficient, w.charge(t, b, cr(4)).Status)

	w.Clock.Advance(24 * time.Hour) // a new period resets the user's pool draw
	require.Equal(t, cr(3), w.view(t, "a").Live.PoolAvailable)
	res = w.charge(t, a, cr(3))
	require.Equal(t, metering.Split{Pool: cr(3)}, res.Taken)
	w.Drain(t)
	w.AssertConsistent(t)
	p, _ := w.Engine.GetProject(w.ctx, "p")
	require.Equal(t, cr(94), p.PoolBalance)
}

func TestUnassignedUserHasOnlyPersonalCredits(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "solo", InitialCredits: cr(2), Purchased: cr(1)})
	v := w.view(t, "solo")
	require.Equal(t, metering.Balances{Awarded: cr(2), Purchased: cr(1), Effective: cr(3)}, v.Live)
	res := w.charge(t, key, cr(3))
	require.Equal(t, metering.Split{Awarded: cr(2), Purchased: cr(1)}, res.Taken)
	require.Equal(t, "", res.Project)
	require.Equal(t, "solo", res.Username)
	w.Drain(t)
	w.AssertConsistent(t)
}
