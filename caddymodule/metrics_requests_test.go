package caddymodule

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// What a request costs the handler's counters: one admitted request (an
// outcome and the buckets it drew from), without and with the project
// label. docs/metrics.md quotes these figures.
//
//	go test ./caddymodule/ -run '^$' -bench BenchmarkRequestMetrics
func BenchmarkRequestMetrics(b *testing.B) {
	split := metering.Split{Allowance: 3, Pool: 2, Awarded: 1}
	for _, m := range []*requestMetrics{newRequestMetrics(false), newRequestMetrics(true)} {
		name := "plain"
		if m.perProject {
			name = "per-project"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.admitted("school", split)
			}
		})
	}
}

// counterValue gathers c and returns the value of its series with
// exactly these labels (0 when there is none).
func counterValue(t *testing.T, c prometheus.Collector, labels ...string) float64 {
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName()+"="+l.GetValue())
			}
			if len(got) == len(labels) && (len(got) == 0 || strings.Join(got, ",") == strings.Join(labels, ",")) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestRequestMetricsCount(t *testing.T) {
	t.Parallel()
	for _, perProject := range []bool{false, true} {
		m := newRequestMetrics(perProject)
		m.admitted("school", metering.Split{Allowance: 3, Purchased: 4})
		m.count(outcomeInsufficient, "school")
		m.count(outcomeInvalidKey, "")
		// Labels in the order Prometheus sorts them: by name.
		series := func(first, project string) []string {
			if perProject {
				return []string{first, "project=" + project}
			}
			return []string{first}
		}
		require.Equal(t, 1.0, counterValue(t, m.requests, series("outcome=charged", "school")...))
		require.Equal(t, 1.0, counterValue(t, m.requests, series("outcome=insufficient", "school")...))
		require.Equal(t, 1.0, counterValue(t, m.requests, series("outcome=invalid_key", "")...))
		require.Equal(t, 3.0, counterValue(t, m.charged, series("bucket=allowance", "school")...))
		require.Equal(t, 4.0, counterValue(t, m.charged, series("bucket=purchased", "school")...))
		require.Zero(t, counterValue(t, m.charged, series("bucket=pool", "school")...), "a bucket not drawn from")
	}
	var none *requestMetrics
	require.NotPanics(t, func() { none.admitted("x", metering.Split{Pool: 1}); none.count(outcomeUnavailable, "") })
}
