package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkUsageReport measures GET /usage's query over a rollup that stands
// for about 10 million usage events: 3,000 users over 120 days (seedRollup).
// The rows are generated directly, as the reconciler would have left them;
// TestUsageRollupMatchesEvents checks on real events that the rollup
// equals the ledger's sums.
func BenchmarkUsageReport(b *testing.B) {
	w := &world{Bundle: meteringtest.New(b, meteringtest.Options{}), ctx: context.Background()}
	ctx := w.ctx
	events := seedRollup(b, w, 3000, "2026-01-01", "2026-05-01")
	require.Greater(b, events, int64(10_000_000))
	b.Logf("rollup: %d rows for %d events", w.pgInt(b, `SELECT count(*) FROM usage_daily`), events)

	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, bc := range []struct {
		name string
		q    metering.UsageQuery
	}{
		{"all-120-days/none", metering.UsageQuery{From: day("2026-01-01"), To: day("2026-05-01")}},
		{"all-120-days/day", metering.UsageQuery{From: day("2026-01-01"), To: day("2026-05-01"), GroupBy: metering.GroupDay}},
		{"all-120-days/user", metering.UsageQuery{From: day("2026-01-01"), To: day("2026-05-01"), GroupBy: metering.GroupUser}},
		{"all-120-days/project", metering.UsageQuery{From: day("2026-01-01"), To: day("2026-05-01"), GroupBy: metering.GroupProject}},
		{"month/user", metering.UsageQuery{From: day("2026-03-01"), To: day("2026-04-01"), GroupBy: metering.GroupUser}},
		{"one-user/day", metering.UsageQuery{User: "u77", From: day("2026-01-01"), To: day("2026-05-01"), GroupBy: metering.GroupDay}},
		{"one-project/user", metering.UsageQuery{Project: "p7", From: day("2026-01-01"), To: day("2026-05-01"), GroupBy: metering.GroupUser}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var rows []metering.UsageRow
			var err error
			for i := 0; i < b.N; i++ {
				rows, err = w.Engine.Usage(ctx, bc.q)
				require.NoError(b, err)
			}
			require.NotEmpty(b, rows)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/report")
		})
	}
}
