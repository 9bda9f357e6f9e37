package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// requireServices fails (never skips) the test when the test Redis or
// PostgreSQL does not answer, saying what to start.
func requireServices(t *testing.T) {
	t.Helper()
	if err := pingRedis(t.Context(), meteringtest.RedisURL()); err != nil {
		t.Fatalf("the test Redis (TOLLGATE_TEST_REDIS_URL) does not answer: %v; start one or run `make test`, which starts one", err)
	}
	if err := pingPostgres(t.Context(), meteringtest.DatabaseURL()); err != nil {
		t.Fatalf("the test PostgreSQL (TOLLGATE_TEST_DATABASE_URL) does not answer: %v; start one or run `make test`, which starts one", err)
	}
}

// closedPort is a loopback address nothing listens on (just freed).
func closedPort(t *testing.T) (host, port string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	host, port, err = net.SplitHostPort(addr)
	require.NoError(t, err)
	return host, port
}

// mute is a server that accepts connections and closes them unanswered:
// something listens, but it is neither Redis nor PostgreSQL.
func mute(t *testing.T) (host, port string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	host, port, err = net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	return host, port
}

func exitCode(err error) int { return report(err, &bytes.Buffer{}) }

func TestPing(t *testing.T) {
	t.Parallel()
	requireServices(t)
	ctx := t.Context()
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"ping", "redis", meteringtest.RedisURL()}, &out, nil))
	require.Contains(t, out.String(), "Redis at ")
	require.NoError(t, run(ctx, []string{"ping", "postgres", meteringtest.DatabaseURL()}, &out, nil))
	// A missing database still means the server answers: ensure-db makes it.
	require.NoError(t, run(ctx, []string{"ping", "postgres", withDatabase(t, "devenv_no_such_db_"+randomHex(t))}, &out, nil))

	host, port := closedPort(t)
	requirePingFails(t, host, port, exitNotListening, "does not answer: nothing accepts connections there")
	// Something listens but does not speak the protocol: not "nothing
	// listens", so the scripts do not start a server on a taken port.
	host, port = mute(t)
	requirePingFails(t, host, port, exitFailed, "does not answer")
}

// requirePingFails pings Redis and PostgreSQL URLs at host:port (with a
// password, which no message may show) and checks the exit status and
// message.
func requirePingFails(t *testing.T, host, port string, code int, want string) {
	t.Helper()
	addr := net.JoinHostPort(host, port)
	for kind, raw := range map[string]string{
		"redis":    "redis://:hunter2@" + addr + "/0",
		"postgres": "postgres://postgres:hunter2@" + addr + "/x?sslmode=disable",
	} {
		err := run(t.Context(), []string{"ping", kind, raw}, &bytes.Buffer{}, nil)
		require.Equal(t, code, exitCode(err), "%s: %v", kind, err)
		require.ErrorContains(t, err, want)
		require.NotContains(t, err.Error(), "hunter2")
	}
}

func TestListening(t *testing.T) {
	t.Parallel()
	host, port := mute(t)
	require.NoError(t, run(t.Context(), []string{"listening", host, port}, nil, nil))
	require.NoError(t, run(t.Context(), []string{"listening", "[" + host + "]", port}, nil, nil))
	host, port = closedPort(t)
	err := run(t.Context(), []string{"listening", host, port}, nil, nil)
	require.Equal(t, exitNotListening, exitCode(err))
	require.ErrorContains(t, err, "nothing accepts connections at 127.0.0.1:"+port)
}

func TestRedisCommand(t *testing.T) {
	t.Parallel()
	requireServices(t)
	key := "devenv-test-" + randomHex(t)
	t.Cleanup(func() {
		run(context.Background(), []string{"redis", meteringtest.RedisURL(), "del", key}, &bytes.Buffer{}, nil)
	})
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"redis", meteringtest.RedisURL(), "rpush", key, "a b", "c"}, &out, nil))
	require.Equal(t, "2\n", out.String())
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"redis", meteringtest.RedisURL(), "lrange", key, "0", "-1"}, &out, nil))
	require.Equal(t, "a b\nc\n", out.String())
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"redis", meteringtest.RedisURL(), "get", key + "-missing"}, &out, nil))
	require.Equal(t, "(nil)\n", out.String())
	err := run(t.Context(), []string{"redis", meteringtest.RedisURL(), "no-such-command"}, &out, nil)
	require.Equal(t, exitFailed, exitCode(err))
	require.ErrorContains(t, err, "no-such-command: ERR unknown command")
}

// TestEnsureDB creates databases under names of its own and drops them.
func TestEnsureDB(t *testing.T) {
	t.Parallel()
	requireServices(t)
	ctx := t.Context()
	// Quotes, a space and upper case: the name must reach PostgreSQL as it is.
	name := `devenv "Test" 'db' ` + randomHex(t)
	raw := withDatabase(t, name)
	dropAfter(t, name)

	// Concurrent runs (make run and make test started together) all
	// succeed, and exactly one creates it.
	var wg sync.WaitGroup
	created := make([]bool, 6)
	errs := make([]error, len(created))
	for i := range created {
		wg.Go(func() { created[i], _, errs[i] = ensureDatabase(ctx, raw) })
	}
	wg.Wait()
	n := 0
	for i := range created {
		require.NoError(t, errs[i])
		if created[i] {
			n++
		}
	}
	require.Equal(t, 1, n, "exactly one run creates the database")
	require.True(t, databaseExists(t, name))

	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"ensure-db", raw}, &out, nil))
	require.Equal(t, "database "+name+" exists\n", out.String())

	// recreate-db empties it, even with a session open on it.
	conn, err := pgx.Connect(ctx, raw)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, "CREATE TABLE marker (x int)")
	require.NoError(t, err)
	out.Reset()
	require.NoError(t, run(ctx, []string{"recreate-db", raw}, &out, nil))
	require.Contains(t, out.String(), "re-created database")
	conn2, err := pgx.Connect(ctx, raw)
	require.NoError(t, err)
	defer conn2.Close(ctx)
	var tables int
	require.NoError(t, conn2.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'marker'").Scan(&tables))
	require.Zero(t, tables)
}

func TestEnsureDBErrors(t *testing.T) {
	t.Parallel()
	requireServices(t)
	host, port := closedPort(t)
	err := run(t.Context(), []string{"ensure-db", "postgres://postgres:hunter2@" + net.JoinHostPort(host, port) + "/x?sslmode=disable"}, &bytes.Buffer{}, nil)
	require.ErrorContains(t, err, "cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:"+port+"/x as user postgres")
	require.NotContains(t, err.Error(), "hunter2")

	u, err := url.Parse(meteringtest.DatabaseURL())
	require.NoError(t, err)
	u.User = url.User("devenv_no_such_role_" + randomHex(t))
	err = run(t.Context(), []string{"ensure-db", u.String()}, &bytes.Buffer{}, nil)
	require.ErrorContains(t, err, "cannot connect to PostgreSQL")
	require.ErrorContains(t, err, "devenv_no_such_role_")
}

func withDatabase(t *testing.T, name string) string {
	t.Helper()
	u, err := url.Parse(meteringtest.DatabaseURL())
	require.NoError(t, err)
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, withMaintenance(t.Context(), meteringtest.DatabaseURL(), func(c *pgx.Conn) error {
		return c.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	}))
	return exists
}

// dropAfter drops a database this test created, and only that one.
func dropAfter(t *testing.T, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := withMaintenance(ctx, meteringtest.DatabaseURL(), func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			return err
		})
		if err != nil {
			t.Errorf("drop test database %q: %v", name, err)
		}
	})
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
