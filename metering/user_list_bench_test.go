package metering_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkListUsers100k measures one filtered, sorted page of 50 users
// (Postgres query plus the live-balance and in-flight pipelines to Redis)
// among 100,000 users in 100 projects. Run with -bench; the target is
// well under 100 ms per page.
func BenchmarkListUsers100k(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	// Bulk load: one statement per table instead of 100,000 admin calls.
	for _, sql := range []string{
		`INSERT INTO projects (name, allowance_amount, allowance_period, pool_enabled, pool_balance)
			SELECT 'p' || lpad(i::text, 3, '0'), 10000000, 'daily', true, 1000000000
			FROM generate_series(0, 99) i`,
		`INSERT INTO users (username, project_id, status, awarded, purchased, last_activity_at, grant_month)
			SELECT 'user' || lpad(i::text, 6, '0'),
				CASE WHEN i % 10 = 0 THEN NULL ELSE (SELECT id FROM projects WHERE name = 'p' || lpad((i % 100)::text, 3, '0')) END,
				CASE WHEN i % 17 = 0 THEN 'inactive' ELSE 'active' END,
				(i * 7919 % 100000) * 1000, (i % 7) * 1000000,
				CASE WHEN i % 3 = 0 THEN NULL ELSE now() - (i % 5000) * interval '1 minute' END,
				24000
			FROM generate_series(1, 100000) i`,
		`INSERT INTO api_keys (user_id, lookup_hash, display_prefix)
			SELECT id, decode(md5('key' || id), 'hex'), 'tg_' || substr(md5(id::text), 1, 4) FROM users`,
		`ANALYZE`,
	} {
		_, err := w.DB.Exec(ctx, sql)
		require.NoError(b, err)
	}
	for _, bc := range []struct {
		name string
		q    metering.UserQuery
	}{
		{"credits", metering.UserQuery{Sort: metering.SortCredits}},
		{"activity", metering.UserQuery{Sort: metering.SortActivity}},
		{"project_active_credits", metering.UserQuery{Project: "p042", Status: "active", Sort: metering.SortCredits}},
		{"search_credits", metering.UserQuery{Search: "77", Sort: metering.SortCredits}},
		{"rare_search_username", metering.UserQuery{Search: "09999", Sort: metering.SortUsername}},
		{"none_activity", metering.UserQuery{Project: metering.ProjectNone, Sort: metering.SortActivity}},
	} {
		benchFindUsers(b, w.Engine, bc.name, bc.q, false)
	}
}
