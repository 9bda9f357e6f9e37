package metering_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkZeroBalanceUsers100k measures a page of 50 users of
// GET /users?balance=zero among 100,000 users in 100 projects (daily
// allowances in two time zones, pools with per-user limits), about 9,000
// of them at 0: the ledger query, then the live confirmation of the
// candidates in one Redis pipeline, then their in-flight counts.
// "project_none_at_zero" scans a project of 1,000 users without one at 0;
// "inactive_none_at_all" is the worst case, a filter nobody matches, so
// every user is read and the page is empty.
func BenchmarkZeroBalanceUsers100k(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO projects (name, allowance_amount, allowance_period, timezone, pool_enabled, pool_balance, pool_per_user_limit)
			SELECT 'p' || lpad(i::text, 3, '0'),
				CASE WHEN i % 2 = 0 THEN 5000000 ELSE 0 END,
				CASE WHEN i % 2 = 0 THEN 'daily' ELSE 'none' END,
				CASE WHEN i % 4 = 0 THEN 'Europe/Berlin' ELSE 'UTC' END,
				i % 3 = 0, 1000000000, CASE WHEN i % 3 = 0 THEN 2000000 END
			FROM generate_series(0, 99) i`,
		// Allowances spent in a period that is not over (2100), no personal
		// credits for i % 20 in (0, 5), the pool limit reached for i % 40 = 0.
		`INSERT INTO users (username, project_id, awarded, allowance_remaining, allowance_period, pool_used, grant_month)
			SELECT 'user' || lpad(i::text, 6, '0'),
				CASE WHEN i % 10 = 0 THEN NULL ELSE (SELECT id FROM projects WHERE name = 'p' || lpad((i % 100)::text, 3, '0')) END,
				CASE WHEN i % 20 IN (0, 5) THEN 0 ELSE 1000000 * (1 + i % 9) END,
				0, 4102444800, CASE WHEN i % 40 = 0 THEN 2000000 ELSE 0 END, 24000
			FROM generate_series(1, 100000) i`,
		`ANALYZE`,
	} {
		_, err := w.DB.Exec(ctx, sql)
		require.NoError(b, err)
	}
	for _, bc := range []struct {
		name string
		q    metering.UserQuery
	}{
		{"username", metering.UserQuery{Balance: metering.BalanceZero}},
		{"credits", metering.UserQuery{Balance: metering.BalanceZero, Sort: metering.SortCredits}},
		{"activity", metering.UserQuery{Balance: metering.BalanceZero, Sort: metering.SortActivity}},
		{"search", metering.UserQuery{Balance: metering.BalanceZero, Search: "77"}},
		{"project_none_at_zero", metering.UserQuery{Balance: metering.BalanceZero, Project: "p042"}},
		{"inactive_none_at_all", metering.UserQuery{Balance: metering.BalanceZero, Status: "inactive"}},
	} {
		benchFindUsers(b, w.Engine, bc.name, bc.q, bc.q.Project != "" || bc.q.Status != "")
	}
}

// benchFindUsers measures one page of FindUsers(q) as a sub-benchmark:
// page 2 when there is one (it exercises the cursor), after a warm-up that
// loads the users into Redis as a first listing would. empty says whether
// the first page is expected to be empty.
func benchFindUsers(b *testing.B, e *metering.Engine, name string, q metering.UserQuery, empty bool) {
	ctx := context.Background()
	b.Run(name, func(b *testing.B) {
		first, next, err := e.FindUsers(ctx, q)
		require.NoError(b, err)
		require.Equal(b, empty, len(first) == 0, "first page: %d users", len(first))
		q.Cursor = next
		_, _, err = e.FindUsers(ctx, q)
		require.NoError(b, err)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, err := e.FindUsers(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
	})
}
