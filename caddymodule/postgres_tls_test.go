package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A gateway whose Postgres accepts TLS only records its charges in the
// ledger over TLS when its URL trusts the server's CA (verify-full); a
// plain connection is rejected by the server, and a URL that does not
// trust the CA cannot connect.
func TestGatewayPostgresOverTLS(t *testing.T) {
	ca := meteringtest.NewTestCA(t)
	pg := meteringtest.StartPostgresTLS(t, ca)
	ctx := context.Background()
	tlsURL := pg.URL("postgres", ca)

	for name, u := range map[string]string{
		"plain":                 fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.Port),
		"TLS without the CA":    fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=verify-full", pg.Port),
		"TLS to the wrong name": fmt.Sprintf("postgres://postgres@127.0.0.2:%d/postgres?sslmode=verify-full&sslrootcert=%s", pg.Port, ca.CertFile),
	} {
		c, err := pgx.Connect(ctx, u)
		if err == nil {
			c.Close(ctx)
		}
		require.Error(t, err, name)
	}

	b := meteringtest.New(t, meteringtest.Options{DatabaseURL: tlsURL})
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 3 * metering.Micro})
	require.NoError(t, err)

	up := newUpstream(t)
	listen := freePort(t)
	startGateway(t, fmt.Sprintf(`{
	admin off
	metering {
		redis %s
		postgres "%s"
		key_pepper test-pepper
		redis_prefix %s
		reconciler_consumer tls-test
	}
}
http://%s {
	metering {
		cost 1
		credit_leases off
	}
	reverse_proxy %s
}`, meteringtest.RedisURL(), withSchema(t, tlsURL, b.Schema), b.Prefix, listen, up.Listener.Addr().String()))
	g := gateway{base: "http://" + listen, client: &http.Client{Timeout: 30 * time.Second}}
	for i := 0; i < 3; i++ {
		resp, body := g.do(t, "GET", "/x", key)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	}
	// The gateway's reconciler writes them to the ledger over TLS.
	var usage int
	require.Eventually(t, func() bool {
		require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage'`).Scan(&usage))
		return usage >= 3
	}, time.Minute, 20*time.Millisecond, "usage events in the ledger: %d", usage)
	require.Equal(t, 3, usage)
	b.AssertConsistent(t)
}
