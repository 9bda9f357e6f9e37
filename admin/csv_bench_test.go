package admin_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkImportUsers10k measures one POST /users/import of 10,000 rows
// (two thirds in a project, every row with initial and purchased credits),
// end to end over loopback HTTP: parse, checks, keys, the Postgres
// transaction and the Redis mirror. It reports seconds per import.
//
//	go test -run XXX -bench ImportUsers10k -benchtime 3x ./admin
func BenchmarkImportUsers10k(b *testing.B) {
	bundle := meteringtest.New(b, meteringtest.Options{})
	h, err := admin.New(bundle.Engine, admin.Config{Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(b, err)
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	e := &env{Bundle: bundle, srv: srv, ctx: b.Context()}
	req, err := http.NewRequest("POST", e.srv.URL+base+"/projects", strings.NewReader(`{"name":"school","allowance":{"amount":5,"period":"weekly"}}`))
	require.NoError(b, err)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	resp, err := e.srv.Client().Do(req)
	require.NoError(b, err)
	resp.Body.Close()
	require.Equal(b, http.StatusCreated, resp.StatusCode)

	const n = 10_000
	files := make([]string, b.N)
	for it := range files {
		var sb strings.Builder
		sb.WriteString("username,project,initial_credits,purchased\n")
		for i := range n {
			project := "school"
			if i%3 == 0 {
				project = ""
			}
			fmt.Fprintf(&sb, "s%d-%05d,%s,%d.5,1\n", it, i, project, i%100)
		}
		files[it] = sb.String()
	}
	b.ResetTimer()
	start := time.Now()
	for it := range b.N {
		req, err := http.NewRequest("POST", e.srv.URL+base+"/users/import", strings.NewReader(files[it]))
		require.NoError(b, err)
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := e.srv.Client().Do(req)
		require.NoError(b, err)
		resp.Body.Close()
		require.Equal(b, http.StatusOK, resp.StatusCode)
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/import")
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "rows/s")
}
