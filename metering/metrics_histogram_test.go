package metering

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHistogramSnapshot(t *testing.T) {
	t.Parallel()
	h := newHistogram([]int64{1, 2, 4})
	for _, v := range []int64{0, 1, 2, 3, 4, 5, 100} {
		h.observe(v)
	}
	require.Equal(t, HistogramSnapshot{Bounds: []int64{1, 2, 4}, Cumulative: []uint64{2, 3, 5}, Count: 7, Sum: 115},
		h.Snapshot(), "bounds are inclusive; above the last bound counts only in Count")
}

func TestNilMetricsCountNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	require.NotPanics(t, func() {
		m.add(ReservationsOpened, 1)
		m.reservationSettled(SettleResult{Refunded: 1, Shortfall: 1})
	})
}

func TestMetricsHaveEveryScript(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	NewMetrics().ScriptLatency(func(script string, h *Histogram) {
		require.False(t, names[script], "one histogram per script: %s", script)
		names[script] = true
		require.Equal(t, LatencyBounds, h.Snapshot().Bounds)
	})
	for _, s := range []string{"fixed_charge", "tracked_charge", "reserve", "settle", "lease_take", "lease_end", "lease_flush"} {
		require.True(t, names[s], s)
	}
}
