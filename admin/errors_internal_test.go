package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A Postgres that cannot be reached answers 503 unavailable, as a Redis
// that cannot be: the request may succeed later, and nothing is wrong with
// it or with Tollgate. Other unclassified errors stay 500.
func TestUnreachablePostgresIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there, the dial is refused.
	_, err := pgconn.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=5")
	require.Error(t, err)
	wrapped := fmt.Errorf("user %q: %w", "ann", err) // as the store functions pass it on
	for _, write := range []bool{false, true} {
		e, internal := toAPIError(wrapped, write)
		require.Equal(t, http.StatusServiceUnavailable, e.Status, "%v", wrapped)
		require.Equal(t, "unavailable", e.Code)
		require.True(t, internal, "logged as the server's trouble")
	}
	e, _ := toAPIError(errors.New("a bug"), true)
	require.Equal(t, http.StatusInternalServerError, e.Status)
}

// A Postgres session ended by the server (a stop or a restart tells its
// sessions 57P01, "terminating connection due to administrator command")
// answers 503 too: the fault suite met it while Postgres was stopping.
func TestPostgresShuttingDownIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	victim, err := pgx.Connect(ctx, meteringtest.DatabaseURL())
	require.NoError(t, err, "start PostgreSQL (make test starts it)")
	defer victim.Close(context.Background())
	killer, err := pgx.Connect(ctx, meteringtest.DatabaseURL())
	require.NoError(t, err)
	defer killer.Close(context.Background())
	var pid uint32
	require.NoError(t, victim.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	var ended bool
	require.NoError(t, killer.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ended))
	require.True(t, ended)
	_, err = victim.Exec(ctx, `SELECT 1`)
	require.Error(t, err)
	e, internal := toAPIError(fmt.Errorf("user %q: %w", "ann", err), true)
	require.Equal(t, http.StatusServiceUnavailable, e.Status, "%v", err)
	require.True(t, internal)
}
