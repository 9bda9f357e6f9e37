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
	// VACUUM as autovacuum does after a bulk insert: GET /projects' per-
	// project user counts need its visibility map for index-only scans;
	// without it that call alone takes about 200 ms here.
	e.Seed100kUsers(b, true)
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
