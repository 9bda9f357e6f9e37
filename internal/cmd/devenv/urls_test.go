package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// parseCase is a URL and what it must mean.
type parseCase struct {
	raw  string
	want endpoint
}

// requireParses checks each case, and that no refusal shows a password
// ("hunter2" in every refused URL) or an unprintable byte.
func requireParses(t *testing.T, parse func(string) (endpoint, error), cases []parseCase, refused map[string]string) {
	t.Helper()
	for _, c := range cases {
		got, err := parse(c.raw)
		require.NoError(t, err, c.raw)
		require.Equal(t, c.want, got, c.raw)
	}
	for raw, want := range refused {
		_, err := parse(raw)
		require.Error(t, err, "%q", raw)
		require.Contains(t, err.Error(), want, "%q", raw)
		require.NotContains(t, err.Error(), "hunter2", "%q", raw)
		requirePrintable(t, err.Error())
	}
}

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	requireParses(t, parseRedisURL, []parseCase{
		{"redis://127.0.0.1:6379/0", endpoint{Host: "127.0.0.1", Port: 6379, Database: "0", Local: true, Shown: "redis://127.0.0.1:6379/0"}},
		// redis.ParseURL's defaults: localhost, 6379, database 0.
		{"redis://", endpoint{Host: "localhost", Port: 6379, Database: "0", Local: true, Shown: "redis://localhost:6379/0"}},
		{"redis://:s3cret@[::1]:7000/15", endpoint{Host: "::1", Port: 7000, Database: "15", Password: "s3cret", Local: true, Shown: "redis://[::1]:7000/15"}},
		{"rediss://ann:p%40ss@redis.example.org:6380/2", endpoint{Host: "redis.example.org", Port: 6380, Database: "2", User: "ann", Password: "p@ss", TLS: true, Shown: "rediss://ann@redis.example.org:6380/2"}},
		{"redis://10.0.0.7/1", endpoint{Host: "10.0.0.7", Port: 6379, Database: "1", Shown: "redis://10.0.0.7:6379/1"}},
		{"redis://127.0.0.2:6379", endpoint{Host: "127.0.0.2", Port: 6379, Database: "0", Local: true, Shown: "redis://127.0.0.2:6379/0"}},
		{"unix:///run/redis.sock?db=3", endpoint{Host: "/run/redis.sock", Database: "3", Shown: "unix:///run/redis.sock?db=3"}},
	}, map[string]string{
		"http://127.0.0.1:6379":         "invalid URL scheme",
		"redis://127.0.0.1:6379/x":      "invalid database number",
		"redis://127.0.0.1:6379/1/2":    "invalid URL path",
		"redis://127.0.0.1:99999/0":     "port 99999 is not a number from 1 to 65535",
		"redis://127.0.0.1:0/0":         "port 0 is not a number from 1 to 65535",
		"redis://u:hunter2@h\x00st:1/0": "invalid control character",
		"redis://u:hunter2@h\nst:1/0":   "invalid control character",
		"redis://u:hunter2@[::1:6379/0": "missing ']'",
		"redis://u:hunter2@host:port/0": "invalid port",
		"":                              "invalid URL scheme",
		"127.0.0.1:6379":                "",
	})
}

// A host that is not UTF-8 parses (as it does in the gateway, which then
// fails to connect), and is shown escaped.
func TestParseRedisURLShowsOddHostsEscaped(t *testing.T) {
	t.Parallel()
	e, err := parseRedisURL("redis://u:hunter2@\xff\xfe:1/0")
	require.NoError(t, err)
	require.Equal(t, `redis://u@\xff\xfe:1/0`, e.Shown)
	require.False(t, e.Local)
}

func TestParsePostgresURL(t *testing.T) {
	t.Setenv("PGUSER", "") // the defaults below are the URLs', not the environment's
	t.Setenv("PGDATABASE", "")
	requireParses(t, parsePostgresURL, []parseCase{
		{"postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable",
			endpoint{Host: "127.0.0.1", Port: 5432, Database: "tollgate", User: "postgres", Local: true, Shown: "postgres://postgres@127.0.0.1:5432/tollgate"}},
		{"postgresql://ann:p%2Fw@localhost/db",
			endpoint{Host: "localhost", Port: 5432, Database: "db", User: "ann", Password: "p/w", TLS: true, Local: true, Shown: "postgres://ann@localhost:5432/db"}},
		// No database: the server's default, the user's name.
		{"postgres://bob@[::1]:6543?sslmode=disable",
			endpoint{Host: "::1", Port: 6543, Database: "bob", User: "bob", Local: true, Shown: "postgres://bob@[::1]:6543/bob"}},
		{"postgres://u@db1.example.org:5432,db2.example.org:5433/ledger?sslmode=verify-full&target_session_attrs=read-write",
			endpoint{Host: "db1.example.org", Port: 5432, Database: "ledger", User: "u", TLS: true,
				Shown: "postgres://u@db1.example.org:5432/ledger (then db2.example.org:5433)"}},
		{"host=127.0.0.1 port=5999 user=postgres dbname='my db' sslmode=disable",
			endpoint{Host: "127.0.0.1", Port: 5999, Database: "my db", User: "postgres", Local: true, Shown: "postgres://postgres@127.0.0.1:5999/my%20db"}},
		{"postgres://postgres@/tollgate?host=/var/run/postgresql&sslmode=disable",
			endpoint{Host: "/var/run/postgresql", Database: "tollgate", User: "postgres", Shown: "postgres://postgres@/tollgate?host=%2Fvar%2Frun%2Fpostgresql"}},
	}, map[string]string{
		"postgres://u:hunter2@host:99999/db":             "invalid port",
		"postgres://u:hunter2@host/db?sslmode=maybe":     "sslmode is invalid",
		"postgres://u:hunter2@ho\x00st/db":               "cannot parse",
		"postgres://u:hunter2@host/db?connect_timeout=x": "invalid connect_timeout",
		"mysql://u:hunter2@host/db":                      "cannot parse",
	})
}

func TestDatabaseNameRefusesWhatPostgresWouldCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("d", maxIdentifier+1)
	_, err := databaseName("postgres://postgres@127.0.0.1/" + long)
	require.ErrorContains(t, err, "64 bytes long; PostgreSQL keeps only 63")
	name, err := databaseName("postgres://postgres@127.0.0.1/" + long[:maxIdentifier])
	require.NoError(t, err)
	require.Len(t, name, maxIdentifier)
}

// The env command's output is eval'd by the scripts: whatever a URL holds
// must come back as the same bytes, and nothing in it may run.
func TestEnvOutputIsSafeToEval(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	require.NoError(t, err, "bash runs the scripts that eval this output")
	password := "a'b\"c$(touch /tmp/devenv-pwned)`id`\\n;|&\n*?~"
	raw := "redis://u:" + urlEscape(password) + "@127.0.0.1:6390/4"
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"env", "redis", raw}, &out, nil))
	cmd := exec.Command(bash, "-c", `eval "$1"; printf '%s|%s|%s|%s|%s|%s' "$R_HOST" "$R_PORT" "$R_DB" "$R_PASS" "$R_LOCAL" "$R_SHOWN"`, "bash", out.String())
	got, err := cmd.Output()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1|6390|4|"+password+"|1|redis://u@127.0.0.1:6390/4", string(got))
	require.NoFileExists(t, "/tmp/devenv-pwned")
}

// urlEscape percent-encodes every byte of s.
func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, "unknown command frobnicate"},
		{[]string{"bogus\x1b[2J"}, `unknown command bogus\x1b[2J`},
		{[]string{"env", "mysql", "x"}, "the server kind is redis or postgres"},
		{[]string{"env", "redis"}, "env takes two arguments"},
		{[]string{"ping", "-wait", "soon", "redis", "redis://"}, "invalid value"},
		{[]string{"listening", "127.0.0.1", "http"}, "port http is not a number"},
		{[]string{"seed-demo", "extra"}, "seed-demo takes flags only"},
		{[]string{"redis", "redis://127.0.0.1"}, "redis takes a URL and a command"},
	} {
		var stderr bytes.Buffer
		code := report(run(t.Context(), c.args, &bytes.Buffer{}, &stderr), &stderr)
		require.Equal(t, exitUsage, code, "%q", c.args)
		require.Contains(t, stderr.String(), c.want, "%q", c.args)
		require.Contains(t, stderr.String(), "usage: devenv", "%q", c.args)
	}
}

// requirePrintable: messages go to terminals.
func requirePrintable(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		require.False(t, r < 0x20 && r != '\t' && r != '\n' || r == 0x7f || r == 0xfffd, "unprintable %q in %q", r, s)
	}
}
