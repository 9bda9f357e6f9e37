package caddymodule

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

const cliToken = "cli-secret-0123456789"

// cliWorld is a real admin API (real Redis and Postgres) on loopback.
type cliWorld struct {
	*meteringtest.Bundle
	url string
}

func newCLIWorld(t *testing.T) *cliWorld {
	t.Helper()
	b := meteringtest.New(t, meteringtest.Options{})
	h, err := admin.New(b.Engine, admin.Config{Tokens: []admin.Token{{Name: "cli", Secret: cliToken, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &cliWorld{Bundle: b, url: srv.URL + "/admin/v1"}
}

// runCLI runs one admin command as `tollgate <args>` would, with the
// connection flags added, and returns stdout, stderr and the error.
func runCLI(t *testing.T, url string, args ...string) (string, string, error) {
	t.Helper()
	var root cobra.Command
	users := &cobra.Command{Use: "users"}
	configureUsersCommand(users)
	usage := &cobra.Command{Use: "usage"}
	configureUsageCommand(usage)
	root.AddCommand(users, usage)
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append(args, "--url", url, "--token", cliToken))
	root.SilenceUsage, root.SilenceErrors = true, true
	err := root.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestCLIUsersImport(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t)
	out, _, err := runCLI(t, w.url, "users", "create", "taken")
	require.NoError(t, err)
	require.Contains(t, out, `"api_key": "tg_`)

	// A dry run with a bad row: the rows on stdout, the problems on
	// stderr, a non-zero exit, nothing written.
	bad := writeFile(t, "username,project,initial_credits\nann,,1\ntaken,,1\nbob,nowhere,2\n")
	out, errOut, err := runCLI(t, w.url, "users", "import", bad, "--dry-run")
	require.ErrorContains(t, err, "2 of 3 rows are invalid")
	require.Contains(t, out, "line,username,status,error,project,initial_credits,purchased,monthly_grant,partner,user_status,key_expires_at,username_in_file\n"+
		"2,ann,ok,,,1,0,0,false,active,,\n3,taken,error,")
	require.Contains(t, errOut, `line 3 (taken): The username "taken" is taken by another user.`)
	require.Contains(t, errOut, `line 4 (bob): There is no project named "nowhere"`)
	require.Contains(t, errOut, "valid rows: 1 user (0 partners, 0 inactive): initial credits 1, purchased 0, monthly grant 0\n"+
		"  (no project): 1 user, initial credits 1, purchased 0, monthly grant 0\n")

	// The real import fails with the server's message; nothing is created.
	out, errOut, err = runCLI(t, w.url, "users", "import", bad)
	require.ErrorContains(t, err, "Nothing was imported: 2 of 3 rows are invalid. (400 invalid_argument)")
	require.Empty(t, out)
	require.Contains(t, errOut, "line 4 (bob)")
	var n int
	require.NoError(t, w.DB.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n))
	require.Equal(t, 1, n)

	// A file-level error is the server's message too.
	_, _, err = runCLI(t, w.url, "users", "import", writeFile(t, "username,email\nann,a@b\n"))
	require.ErrorContains(t, err, `The header has the unknown column "email"`)
	_, _, err = runCLI(t, w.url, "users", "import", "/does/not/exist.csv")
	require.Error(t, err)

	// A large file: progress on stderr, keys as CSV on stdout, and they work.
	var b strings.Builder
	b.WriteString("username,project,initial_credits\n")
	for i := range 12000 {
		fmt.Fprintf(&b, "pupil-of-the-school-%05d,,%d\n", i, 1+i%5)
	}
	out, errOut, err = runCLI(t, w.url, "users", "import", writeFile(t, b.String()))
	require.NoError(t, err, errOut)
	require.Contains(t, errOut, "uploading ")
	require.Contains(t, errOut, ": 50% (")
	require.Contains(t, errOut, ": 100% (")
	require.Contains(t, errOut, "created 12000 users")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 12001)
	require.Equal(t, []string{"username", "api_key"}, recs[0])
	require.Equal(t, "pupil-of-the-school-00003", recs[4][0])
	res, err := w.Engine.Charge(context.Background(), recs[4][1], 4*metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status, "pupil-00003 has 4 credits")

	// Bad connection settings fail with a clear message.
	_, _, err = runCLI(t, w.url+"/nope", "users", "import", bad, "--dry-run")
	require.ErrorContains(t, err, "404")
	var root cobra.Command
	users := &cobra.Command{Use: "users"}
	configureUsersCommand(users)
	root.AddCommand(users)
	root.SetArgs([]string{"users", "export", "--url", w.url, "--token", "wrong"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	require.ErrorContains(t, root.Execute(), "unauthenticated")
}

func TestCLIUsersExportAndCreate(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t)
	ctx := context.Background()
	_, err := w.Engine.CreateProject(ctx, "test", metering.ProjectSpec{Name: "teachers"})
	require.NoError(t, err)

	out, _, err := runCLI(t, w.url, "users", "create", "ann", "--project", "teachers",
		"--initial-credits", "12.345678", "--purchased", "1", "--monthly-grant", "0.5", "--partner")
	require.NoError(t, err)
	var created struct {
		User   map[string]any `json:"user"`
		APIKey string         `json:"api_key"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&created))
	require.True(t, metering.WellFormedKey(created.APIKey))
	require.Equal(t, "teachers", created.User["project"])
	require.Equal(t, json.Number("12.345678"), created.User["awarded"], "amounts sent exactly")
	require.Equal(t, json.Number("1"), created.User["purchased"], "the grant starts on the next 1st")
	require.Equal(t, json.Number("0.5"), created.User["monthly_grant"], "amounts sent exactly")
	require.Equal(t, true, created.User["partner"])

	_, _, err = runCLI(t, w.url, "users", "create", "ann")
	require.ErrorContains(t, err, "409 conflict")
	_, _, err = runCLI(t, w.url, "users", "create", "bob", "--initial-credits", "1.0000001")
	require.ErrorContains(t, err, "initial_credits")
	_, _, err = runCLI(t, w.url, "users", "create", "bob", "--purchased", "lots")
	require.ErrorContains(t, err, `purchased "lots" is not a number`)
	_, _, err = runCLI(t, w.url, "users", "create")
	require.Error(t, err)
	_, _, err = runCLI(t, w.url, "users", "create", "solo")
	require.NoError(t, err)

	out, _, err = runCLI(t, w.url, "users", "export")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, []string{"username", "project", "personal_credits", "effective_credits", "status", "last_activity_at"}, recs[0][:6])
	require.Equal(t, []string{"ann", "teachers", "13.345678", "13.345678", "active", ""}, recs[1][:6])

	out, _, err = runCLI(t, w.url, "users", "export", "--project", "none")
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(out, "\n"), out)
	require.Contains(t, out, "\nsolo,,0,0,active,")

	file := filepath.Join(t.TempDir(), "out.csv")
	out, _, err = runCLI(t, w.url, "users", "export", "--project", "teachers", "--status", "active", "-o", file)
	require.NoError(t, err)
	require.Empty(t, out)
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(got), "\nann,teachers,")
	require.NotContains(t, string(got), "solo")

	// The key filters pass through: no key here is 90 days old; all are active.
	out, _, err = runCLI(t, w.url, "users", "export", "--key-older-than", "90d")
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(out, "\n"), "the header only: %s", out)
	out, _, err = runCLI(t, w.url, "users", "export", "--key-status", "active", "--key-older-than", "1d")
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(out, "\n"), out)
	out, _, err = runCLI(t, w.url, "users", "export", "--key-status", "active")
	require.NoError(t, err)
	require.Equal(t, 3, strings.Count(out, "\n"), out)
	_, _, err = runCLI(t, w.url, "users", "export", "--key-older-than", "90")
	require.ErrorContains(t, err, "key_older_than must be a number of days such as 90d")

	_, _, err = runCLI(t, w.url, "users", "export", "--status", "sleeping", "-o", file)
	require.ErrorContains(t, err, "status")
	_, err = os.Stat(file)
	require.True(t, os.IsNotExist(err), "a failed export leaves no file behind")
}

func TestCLIUsage(t *testing.T) {
	t.Parallel()
	var gotQuery, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/v1/usage" {
			http.NotFound(w, r)
			return
		}
		gotQuery, gotAuth = r.URL.RawQuery, r.Header.Get("Authorization")
		if r.URL.Query().Get("group_by") == "week" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":{"code":"invalid_argument","message":"must be day, user, project or none","field":"group_by"}}`))
			return
		}
		if r.URL.Query().Get("format") == "csv" {
			w.Header().Set("Content-Type", "text/csv")
			w.Write([]byte("day,requests,credits\n2026-11-01,10,42.5\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"rows":[{"requests":10,"credits":42.5}]}`))
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/admin/v1"

	out, _, err := runCLI(t, url, "usage", "--user", "ann", "--project", "teachers", "--from", "2026-11-01",
		"--to", "2026-11-30", "--group-by", "day", "--format", "csv", "--model", "gpt-4o")
	require.NoError(t, err)
	require.Equal(t, "day,requests,credits\n2026-11-01,10,42.5\n", out)
	require.Equal(t, "format=csv&from=2026-11-01&group_by=day&model=gpt-4o&project=teachers&to=2026-11-30&user=ann", gotQuery)
	require.Equal(t, "Bearer "+cliToken, gotAuth)

	out, _, err = runCLI(t, url, "usage")
	require.NoError(t, err)
	require.Equal(t, "", gotQuery, "only the flags given are sent")
	require.Equal(t, `{"rows":[{"requests":10,"credits":42.5}]}`, out)

	_, _, err = runCLI(t, url, "usage", "--group-by", "week")
	require.EqualError(t, err, "group_by: must be day, user, project or none (400 invalid_argument)",
		"a message that does not name its field (an older server) gets it in front")
	_, _, err = runCLI(t, url, "usage", "stray")
	require.Error(t, err)
}

// TestCLIImportResultsAreSafeCSV: the dry run's CSV echoes what the file
// had; a cell that a spreadsheet would run as a formula is neutralised.
func TestCLIImportResultsAreSafeCSV(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t)
	file := writeFile(t, "username,project,initial_credits\nann,,1\n\"=HYPERLINK(\"\"http://x\"\")\",,1\n@sum,,-2\n")
	out, _, err := runCLI(t, w.url, "users", "import", file, "--dry-run")
	require.ErrorContains(t, err, "2 of 3 rows are invalid")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 4, out)
	require.Equal(t, []string{"2", "ann", "ok", "", "", "1", "0", "0", "false", "active", "", ""}, recs[1])
	require.Equal(t, `'=HYPERLINK("http://x")`, recs[2][1])
	require.Equal(t, "'@sum", recs[3][1])
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" {
				require.NotContains(t, "=+-@\t\r", cell[:1], "cell %q starts a formula", cell)
			}
		}
	}
}
