package metering_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestEngineMetrics counts a reservation's life cycle on an engine with
// Metrics: opened, settled with a refund or an overrun, swept.
func TestEngineMetrics(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	cfg := w.Config
	cfg.Metrics = metering.NewMetrics()
	e, err := metering.NewEngine(w.Redis, w.DB, cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	m := cfg.Metrics

	var rs []*metering.Reservation
	for range 3 {
		r, err := e.Reserve(w.ctx, metering.ReserveRequest{Key: key, Fixed: ptr(cr(2)), Lease: time.Minute, Request: "POST /x"})
		require.NoError(t, err)
		require.Equal(t, metering.Reserved, r.Status)
		rs = append(rs, r)
	}
	_, err = e.Settle(w.ctx, rs[0], metering.Outcome{Cost: ptr(metering.Credits(500_000))}) // 1.5 back
	require.NoError(t, err)
	_, err = e.Settle(w.ctx, rs[1], metering.Outcome{Cost: ptr(cr(5))}) // 3 above
	require.NoError(t, err)
	again, err := e.Settle(w.ctx, rs[1], metering.Outcome{Refund: true})
	require.NoError(t, err)
	require.True(t, again.AlreadySettled)

	w.Clock.Advance(2 * time.Minute)
	sw, err := e.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund})
	require.NoError(t, err)
	n, err := sw.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	for id, want := range map[metering.CounterID]int64{
		metering.ReservationsOpened:  3,
		metering.ReservationsSettled: 3, // a repeat settles nothing
		metering.ReservationsSwept:   1,
		metering.Refunds:             2, // rs[0] and the swept rs[2]
		metering.RefundedCredits:     int64(cr(2)) - 500_000 + int64(cr(2)),
		metering.OverrunCredits:      int64(cr(3)),
		metering.Shortfalls:          0,
		metering.SweeperRuns:         1,
		metering.SweeperFailures:     0,
	} {
		require.Equal(t, want, m.Count(id), "counter %d", id)
	}
	calls := map[string]uint64{}
	m.ScriptLatency(func(script string, h *metering.Histogram) { calls[script] = h.Snapshot().Count })
	require.GreaterOrEqual(t, calls["reserve"], uint64(3))
	require.GreaterOrEqual(t, calls["settle"], uint64(4))
	require.Positive(t, m.BatchSize.Snapshot().Count)
}

// TestReconcilerMetrics counts the events a reconciler records and the
// rounds that fail: a round Postgres refuses as unavailable fails, and its
// events are counted once, when a later round records them.
func TestReconcilerMetrics(t *testing.T) {
	t.Parallel()
	w := oneStreamWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", Purchased: cr(50)})
	uid := w.view(t, "b").ID
	w.charge(t, key, cr(1))
	w.xaddAdjust(t, uid, "busy-1", 1_000_000, "no", "busy")
	entries := w.streamLen(t)
	cfg := w.Config
	cfg.Metrics = metering.NewMetrics()
	e, err := metering.NewEngine(w.Redis, w.DB, cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	r, err := e.NewReconciler(metering.ReconcilerConfig{Consumer: "counted", Block: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(r.Stop)

	remove := w.RefuseEvents(t, "NEW.note = 'busy'", "53000") // insufficient_resources: retried, not dead-lettered
	_, err = r.RunOnce(w.ctx)
	require.ErrorContains(t, err, "SQLSTATE 53000")
	remove()
	require.Equal(t, int64(1), cfg.Metrics.Count(metering.ReconcileFailures))
	require.Zero(t, cfg.Metrics.Count(metering.ReconciledEvents))

	require.Equal(t, int(entries), runUntilIdle(t, r))
	require.Equal(t, entries, cfg.Metrics.Count(metering.ReconciledEvents))
	require.Equal(t, int64(1), cfg.Metrics.Count(metering.ReconcileFailures))
}
