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
