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
// for about 10 million usage events: 3,000 users in 20 projects (one in 20
// users has none) over 120 days, each user active on 70% of days with 1 to 83
// requests (mean 42). The rows are generated directly, as the reconciler
// would have left them; TestUsageRollupMatchesEvents checks on real events
// that the rollup equals the ledger's sums.
func BenchmarkUsageReport(b *testing.B) {
	w := &world{Bundle: meteringtest.New(b, meteringtest.Options{}), ctx: context.Background()}
	ctx := w.ctx
	_, err := w.DB.Exec(ctx, `
		INSERT INTO usage_daily (day, user_id, project_id, username, project_name,
			requests, credits, allowance, pool, awarded, purchased)
		SELECT d::date, u, CASE WHEN u % 20 = 0 THEN 0 ELSE u % 20 END, 'u' || u,
			CASE WHEN u % 20 = 0 THEN '' ELSE 'p' || (u % 20) END,
			r, r * 1000000, r * 600000, r * 200000, r * 150000, r * 50000
		FROM generate_series(1, 3000) u,
			generate_series(date '2026-01-01', date '2026-04-30', interval '1 day') d,
			LATERAL (SELECT 1 + abs(hashint4(u * 1000 + extract(doy FROM d)::int)) % 83 AS r) x
		WHERE abs(hashint8(u * 7919 + extract(doy FROM d)::bigint)) % 10 < 7`)
	require.NoError(b, err)
	_, err = w.DB.Exec(ctx, `ANALYZE usage_daily`)
	require.NoError(b, err)
	events := w.pgInt(b, `SELECT sum(requests) FROM usage_daily`)
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
			for i := 0; i < b.N; i++ {
				rows, err = w.Engine.Usage(ctx, bc.q)
				require.NoError(b, err)
			}
			require.NotEmpty(b, rows)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/report")
		})
	}
}
