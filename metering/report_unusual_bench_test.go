package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// seedRollup fills usage_daily as the reconciler would have left it for
// users u1..uN (ids 1..N, with their rows in users) in 20 projects (one
// in 20 users has none), over the days [from, to): each user active on
// 70% of days with 1 to 83 requests (mean 42) of one credit each, split
// over the buckets. It returns the number of events the rows stand for.
func seedRollup(tb testing.TB, w *world, users int, from, to string) int64 {
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO projects (id, name) OVERRIDING SYSTEM VALUE SELECT i, 'p' || i FROM generate_series(1, 19) i`, nil},
		{`INSERT INTO users (id, username, project_id) OVERRIDING SYSTEM VALUE
			SELECT u, 'u' || u, nullif(u % 20, 0) FROM generate_series(1, $1::int) u`, []any{users}},
		{`INSERT INTO usage_daily (day, user_id, project_id, username, project_name,
			requests, credits, allowance, pool, awarded, purchased)
		SELECT d::date, u, CASE WHEN u % 20 = 0 THEN 0 ELSE u % 20 END, 'u' || u,
			CASE WHEN u % 20 = 0 THEN '' ELSE 'p' || (u % 20) END,
			r, r * 1000000, r * 600000, r * 200000, r * 150000, r * 50000
		FROM generate_series(1, $1::int) u,
			generate_series($2::date, $3::date - 1, interval '1 day') d,
			LATERAL (SELECT 1 + abs(hashint4(u * 1000 + extract(doy FROM d)::int)) % 83 AS r) x
		WHERE abs(hashint8(u * 7919 + extract(doy FROM d)::bigint)) % 10 < 7`, []any{users, from, to}},
	} {
		_, err := w.DB.Exec(w.ctx, st.sql, st.args...)
		require.NoError(tb, err)
	}
	_, err := w.DB.Exec(w.ctx, `ANALYZE`)
	require.NoError(tb, err)
	return w.pgInt(tb, `SELECT sum(requests) FROM usage_daily`)
}

// BenchmarkUnusualUsage measures GET /reports/unusual's query: over the
// rollup of BenchmarkUsageReport (3,000 users, 120 days, about 10 million
// events), and over 30,000 users for the 40 days a report reads (about
// 35 million events). One user in 100 has a spike of ten times its usual
// day on the report's last day, so each report lists about 1% of users.
func BenchmarkUnusualUsage(b *testing.B) {
	for _, set := range []struct {
		name     string
		users    int
		from, to string
	}{
		{"3k-users-120-days", 3000, "2026-01-01", "2026-05-01"},
		{"30k-users-40-days", 30000, "2026-03-22", "2026-05-01"},
	} {
		b.Run(set.name, func(b *testing.B) {
			w := &world{Bundle: meteringtest.New(b, meteringtest.Options{}), ctx: context.Background()}
			events := seedRollup(b, w, set.users, set.from, set.to)
			_, err := w.DB.Exec(w.ctx, `UPDATE usage_daily SET requests = requests * 10, credits = credits * 10
				WHERE user_id % 100 = 0 AND day = '2026-04-30'`)
			require.NoError(b, err)
			b.Logf("rollup: %d rows for %d events", w.pgInt(b, `SELECT count(*) FROM usage_daily`), events)
			day, _ := time.Parse(time.DateOnly, "2026-04-30")
			for _, bc := range []struct {
				name string
				q    metering.UnusualQuery
			}{
				{"day", metering.UnusualQuery{Date: day}},
				{"week", metering.UnusualQuery{Date: day, Window: metering.WindowWeek, Factor: 2_000_000}},
				{"day/project", metering.UnusualQuery{Date: day, Project: "p10"}},
				{"day/page-of-1000", metering.UnusualQuery{Date: day, Limit: 1000}},
			} {
				b.Run(bc.name, func(b *testing.B) {
					var rep metering.UnusualReport
					for i := 0; i < b.N; i++ {
						rep, err = w.Engine.UnusualUsage(w.ctx, bc.q)
						require.NoError(b, err)
					}
					require.NotEmpty(b, rep.Rows)
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/report")
				})
			}
		})
	}
}
