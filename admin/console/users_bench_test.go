package console_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkUsersPage100k measures one users page (50 rows) served by the
// console over 100,000 users in 100 projects: the session check, the
// in-process API calls (GET /projects for the project select, GET /users
// with its Postgres query and Redis pipelines), the template and the
// loopback HTTP round trip. The bar is under 100 ms a page.
func BenchmarkUsersPage100k(b *testing.B) {
	e := setup(b)
	// Bulk load, as metering's BenchmarkListUsers100k does: one statement
	// per table instead of 100,000 admin calls.
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
		// VACUUM as autovacuum does after a bulk insert: it sets the
		// visibility map, which GET /projects' per-project user counts
		// need for index-only scans. Without it that call alone takes
		// about 200 ms here (every count visits the heap).
		`VACUUM ANALYZE`,
	} {
		_, err := e.DB.Exec(e.ctx, sql)
		require.NoError(b, err)
	}
	signedIn := e.signedIn(b, adminSecret)
	for _, bc := range []struct{ name, query string }{
		{"username", ""},
		{"credits", "?sort=-credits"},
		{"activity", "?sort=-activity"},
		{"project_active_credits", "?project=p042&status=active&sort=-credits"},
		{"search_credits", "?search=77&sort=-credits"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := &browser{t: b, e: e, http: signedIn.http}
			p := br.get("/admin/users" + bc.query)
			require.Equal(b, http.StatusOK, p.status, p.body)
			require.Len(b, p.users(), 50)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if p := br.get("/admin/users" + bc.query); p.status != http.StatusOK {
					b.Fatalf("status %d", p.status)
				}
			}
		})
	}
}
