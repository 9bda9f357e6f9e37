package admin_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/adminclient"
	"github.com/tollgate/tollgate/metering"
)

// importAnswer is the body of POST /users/import (decoded strictly: the
// tests know every field).
type importAnswer struct {
	Error *struct {
		Code, Message, Field string
	} `json:"error"`
	DryRun bool `json:"dry_run"`
	Rows   []struct {
		Line           int    `json:"line"`
		Username       string `json:"username"`
		UsernameInFile string `json:"username_in_file"`
		Status         string `json:"status"`
		Error          string `json:"error"`
		APIKey         string `json:"api_key"`
		// On valid rows only: what the row writes.
		Project           *string      `json:"project"`
		InitialCredits    *json.Number `json:"initial_credits"`
		Purchased         *json.Number `json:"purchased"`
		MonthlyGrant      *json.Number `json:"monthly_grant"`
		Partner           *bool        `json:"partner"`
		UserStatus        string       `json:"user_status"`
		KeyExpiresAt      *string      `json:"key_expires_at"`
		GrantsPaidThrough *string      `json:"grants_paid_through"`
	} `json:"rows"`
	Created        int                      `json:"created"`
	Totals         adminclient.ImportTotals `json:"totals"`
	Separator      string                   `json:"separator"`
	IgnoredColumns []string                 `json:"ignored_columns"`
}

// sendCSV posts a CSV body (or GETs with none) and returns the raw answer.
func (e *env) sendCSV(t *testing.T, method, path, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if method == "POST" {
		req.Header.Set("Content-Type", "text/csv")
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, raw
}

func (e *env) importCSV(t *testing.T, query, body string, status int) importAnswer {
	t.Helper()
	resp, raw := e.sendCSV(t, "POST", "/users/import"+query, adminSecret, body)
	require.Equal(t, status, resp.StatusCode, "body %s", raw)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out importAnswer
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), "%s", raw)
	return out
}

// worldCounts is what an import may write: rows in each table and the
// entries of the Redis key index.
func (e *env) worldCounts(t *testing.T) []int64 {
	t.Helper()
	var out []int64
	for _, table := range []string{"users", "api_keys", "events", "audit_log", "invites"} {
		out = append(out, int64(e.countRows(t, table)))
	}
	n, err := e.Redis.HLen(e.ctx, e.Engine.Keys().KeyIndex()).Result()
	require.NoError(t, err)
	return append(out, n)
}

// badImport has one row of every error kind and two good rows.
const badImport = "username,project,initial_credits\n" +
	"ok-1,teachers,5\n" + // line 2
	"Bad Name,,1\n" + // 3: bad name
	"ok-2,nowhere,1\n" + // 4: unknown project
	"ok-3,,1\n" + // 5
	"ok-3,,2\n" + // 6: duplicate in file
	"taken,,1\n" + // 7: username taken
	"ok-4,,1.0000001\n" + // 8: bad amount
	"ok-5,,-2\n" // 9: negative amount

func TestImportDryRunAndAllOrNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"teachers"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"taken"}`).requireStatus(t, http.StatusCreated)
	before := e.worldCounts(t)

	check := func(a importAnswer) {
		t.Helper()
		require.Equal(t, 0, a.Created)
		require.Len(t, a.Rows, 8)
		want := []struct {
			line     int
			user     string
			errorHas string
		}{
			{2, "ok-1", ""},
			{3, "Bad Name", `The username "Bad Name" contains a space; only lower-case letters a-z, digits 0-9, ".", "_" and "-" are allowed.`},
			{4, "ok-2", `There is no project named "nowhere"; an import does not create projects: create it first (POST /projects).`},
			{5, "ok-3", ""},
			{6, "ok-3", `The username "ok-3" is also on line 5 (usernames are compared in lower case).`},
			{7, "taken", `The username "taken" is taken by another user.`},
			{8, "ok-4", `The initial_credits "1.0000001" is not an amount: write a decimal number with at most 6 fractional digits, such as 12.5.`},
			{9, "ok-5", `The initial_credits "-2" must not be negative.`},
		}
		for i, w := range want {
			r := a.Rows[i]
			require.Equal(t, w.line, r.Line)
			require.Equal(t, w.user, r.Username)
			require.Empty(t, r.APIKey)
			if w.errorHas == "" {
				require.Equal(t, "ok", r.Status, "line %d: %s", r.Line, r.Error)
				require.Empty(t, r.Error)
			} else {
				require.Equal(t, "error", r.Status, "line %d", r.Line)
				require.Equal(t, w.errorHas, r.Error)
				require.Nil(t, r.InitialCredits, "a row in error shows no values")
			}
		}
	}

	a := e.importCSV(t, "?dry_run=true", badImport, http.StatusOK)
	require.Nil(t, a.Error)
	check(a)
	require.Equal(t, before, e.worldCounts(t), "a dry run writes nothing")

	a = e.importCSV(t, "", badImport, http.StatusBadRequest)
	require.Equal(t, "invalid_argument", a.Error.Code)
	require.Equal(t, "Nothing was imported: 6 of 8 rows are invalid.", a.Error.Message)
	check(a)
	require.Equal(t, before, e.worldCounts(t), "one bad row: nothing is created")
	var n int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM users WHERE username LIKE 'ok-%'`).Scan(&n))
	require.Zero(t, n)

	// A clean file passes the dry run with every row ok and still writes nothing.
	a = e.importCSV(t, "?dry_run=1", "username,project,initial_credits\nann,teachers,1\nbob,,\n", http.StatusOK)
	require.Equal(t, 0, a.Created)
	require.Equal(t, "ok", a.Rows[0].Status)
	require.Equal(t, "ok", a.Rows[1].Status)
	require.Equal(t, before, e.worldCounts(t))

	// A viewer may not import, not even a dry run (it is a POST).
	resp, _ := e.sendCSV(t, "POST", "/users/import?dry_run=true", viewerSecret, badImport)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestImportCreatesUsers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"teachers","allowance":{"amount":75,"period":"daily"},
		"pool":{"enabled":true,"balance":5000}}`).requireStatus(t, http.StatusCreated)
	audits := e.countRows(t, "audit_log")

	a := e.importCSV(t, "", "username,project,initial_credits,purchased,monthly_grant,partner\n"+
		"ann,teachers,4900,0.5,10,true\n"+
		"bob,,12.345678,,,\n"+
		"cy,teachers,,,,\n", http.StatusOK)
	require.Nil(t, a.Error)
	require.Equal(t, 3, a.Created)
	keys := map[string]string{}
	for _, r := range a.Rows {
		require.Equal(t, "ok", r.Status)
		require.True(t, metering.WellFormedKey(r.APIKey), r.APIKey)
		keys[r.Username] = r.APIKey
	}
	require.Len(t, keys, 3)

	// The same balances as POST /users gives (see TestCreateAndGetUser).
	u := e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK).body
	require.Equal(t, "teachers", u["project"])
	require.Equal(t, num("4900"), u["awarded"])
	require.Equal(t, num("0.5"), u["purchased"], "the grant starts on the next 1st")
	require.Equal(t, num("75"), u["allowance_remaining"])
	require.Equal(t, num("9975.5"), u["effective_credits"])
	require.Equal(t, true, u["partner"])
	require.Equal(t, keys["ann"][:7], u["key"].(map[string]any)["prefix"])
	u = e.admin(t, "GET", "/users/bob", "").requireStatus(t, http.StatusOK).body
	require.Nil(t, u["project"])
	require.Equal(t, num("12.345678"), u["effective_credits"])

	// The initial credits are in the ledger already, as adjustment events.
	var events int
	var awarded, purchased int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*), sum(d_awarded), sum(d_purchased) FROM events
		WHERE kind = 'adjust' AND note = 'initial credits' AND actor = 'ops'`).Scan(&events, &awarded, &purchased))
	require.Equal(t, 3, events)
	require.Equal(t, int64(4912_345678), awarded)
	require.Equal(t, int64(500_000), purchased)
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT awarded FROM users WHERE username = 'bob'`).Scan(&awarded))
	require.Equal(t, int64(12_345678), awarded)

	// Without a key-encryption key nothing is sealed (NULL, as for POST /users).
	var unsealed int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM api_keys WHERE sealed IS NULL`).Scan(&unsealed))
	require.Equal(t, 3, unsealed)

	// One audit entry with counts and no key.
	require.Equal(t, audits+1, e.countRows(t, "audit_log"))
	var actor, details string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT actor, details::text FROM audit_log WHERE action = 'user.import'`).Scan(&actor, &details))
	require.Equal(t, "ops", actor)
	require.Contains(t, details, `"created": 3`)
	require.NotContains(t, details, "tg_")

	// The keys work at once, and charges draw from the imported balances.
	for name, cost := range map[string]metering.Credits{"ann": 80 * metering.Micro, "bob": 12 * metering.Micro, "cy": 75 * metering.Micro} {
		res, err := e.Engine.Charge(e.ctx, keys[name], cost, "POST /v1/test")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status, name)
	}
	res, err := e.Engine.Charge(e.ctx, keys["bob"], metering.Micro, "POST /v1/test")
	require.NoError(t, err)
	require.Equal(t, metering.Insufficient, res.Status, "bob had 12.345678")
	u = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK).body
	require.Equal(t, num("9895.5"), u["effective_credits"])

	// Importing the same names again: all rows taken, nothing written.
	before := e.worldCounts(t)
	a = e.importCSV(t, "", "username,project,initial_credits\nann,,1\ndee,,1\n", http.StatusBadRequest)
	require.Equal(t, "error", a.Rows[0].Status)
	require.Equal(t, "ok", a.Rows[1].Status)
	require.Empty(t, a.Rows[1].APIKey)
	require.Equal(t, before, e.worldCounts(t))

	e.Drain(t)
	e.AssertConsistent(t)
}

func TestImportFormats(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"p.1"}`).requireStatus(t, http.StatusCreated)
	body := "\ufeffPROJECT , Username ,initial_credits\r\n" +
		"\" p.1 \",  ann  ,\" 2.5 \"\r\n" +
		"\r\n" +
		",\"bob\",\"1,5\"\r\n" + // a comma inside quotes is not a separator (and not an amount)
		",\"b\"\"c\",1\r\n" +
		" , cat , \r\n"
	a := e.importCSV(t, "?dry_run=true", body, http.StatusOK)
	require.Len(t, a.Rows, 4)
	require.Equal(t, []int{2, 4, 5, 6}, []int{a.Rows[0].Line, a.Rows[1].Line, a.Rows[2].Line, a.Rows[3].Line})
	require.Equal(t, "ok", a.Rows[0].Status, a.Rows[0].Error)
	require.Contains(t, a.Rows[1].Error, `The initial_credits "1,5" is not an amount: in a file separated by commas, write a decimal point`)
	require.Contains(t, a.Rows[2].Error, `The username "b\"c" contains "\""`)
	require.Equal(t, "ok", a.Rows[3].Status)

	body = strings.Replace(body, `"1,5"`, `"1.5"`, 1)
	body = strings.Replace(body, `"b""c"`, `"b.c"`, 1)
	a = e.importCSV(t, "", body, http.StatusOK)
	require.Equal(t, 4, a.Created)
	r := e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "p.1", r.body["project"])
	require.Equal(t, num("2.5"), r.body["awarded"])
	r = e.admin(t, "GET", "/users/cat", "").requireStatus(t, http.StatusOK)
	require.Nil(t, r.body["project"])
	require.Equal(t, num("0"), r.body["awarded"])
}

func TestImportRejectsFiles(t *testing.T) {
	t.Parallel()
	e := setup(t)
	before := e.worldCounts(t)
	for _, tc := range []struct{ query, contentType, body, field, msg string }{
		{"", "text/csv", "username,project,initial_credits,email,Phone\nann,,1,a,b\n", "header", `The header has the unknown columns "email" and "Phone"`},
		{"", "text/csv", "username,initial_credits\nann,1\n", "header", "The header lacks the column project"},
		{"", "text/csv", "ann,,1\n", "header", "The first line must be the header: username,project,initial_credits"},
		{"", "text/csv", "", "body", "The CSV file is empty"},
		{"", "text/csv", "username,project,initial_credits\n", "body", "no rows"},
		{"", "text/csv", "username,project,initial_credits\n\"ann,,1\n", "body", "Line 2"},
		{"", "application/json", `{"username":"ann"}`, "Content-Type", "text/csv"},
		{"?dry_run=maybe", "text/csv", "username,project,initial_credits\nann,,1\n", "dry_run", "true or false"},
	} {
		req, err := http.NewRequest("POST", e.srv.URL+base+"/users/import"+tc.query, strings.NewReader(tc.body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		req.Header.Set("Content-Type", tc.contentType)
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", raw)
		var out struct {
			Error struct{ Code, Field, Message string }
		}
		require.NoError(t, json.Unmarshal(raw, &out))
		require.Equal(t, "invalid_argument", out.Error.Code)
		require.Equal(t, tc.field, out.Error.Field, "%s", raw)
		require.Contains(t, out.Error.Message, tc.msg)
		requireSentence(t, out.Error.Message, out.Error.Field)
	}
	require.Equal(t, before, e.worldCounts(t))
}

func TestImportTooLarge(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, err := admin.New(e.Engine, admin.Config{MaxImportBytes: 100,
		Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)

	small := "username,project,initial_credits\nann,,1\n"
	big := small + strings.Repeat("x,,1\n", 20)
	resp, raw := e.sendCSV(t, "POST", "/users/import?dry_run=true", adminSecret, big)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", raw)
	require.Contains(t, string(raw), `"code":"too_large"`)
	resp, raw = e.sendCSV(t, "POST", "/users/import", adminSecret, big)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", raw)
	require.Equal(t, 0, e.countRows(t, "users"))
	resp, raw = e.sendCSV(t, "POST", "/users/import", adminSecret, small)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)

	_, err = admin.New(e.Engine, admin.Config{MaxImportBytes: -1,
		Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.ErrorContains(t, err, "max_import_bytes:")
}

// readExport GETs /users/export and parses the CSV.
func (e *env) readExport(t *testing.T, token, query string) (*http.Response, [][]string) {
	t.Helper()
	resp, raw := e.sendCSV(t, "GET", "/users/export"+query, token, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"username", "project", "personal_credits", "effective_credits", "status", "last_activity_at",
		"awarded", "purchased", "allowance_remaining", "pool_available", "monthly_grant", "partner", "created_at",
		"key_status", "key_created_at", "key_expires_at", "grants_paid_through"}, recs[0])
	return resp, recs[1:]
}

func names(recs [][]string) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r[0])
	}
	return out
}

func TestExportFilters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"teachers","allowance":{"amount":75,"period":"daily"},
		"pool":{"enabled":true,"balance":5000}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects", `{"name":"kids"}`).requireStatus(t, http.StatusCreated)
	e.importCSV(t, "", "username,project,initial_credits,purchased,monthly_grant,partner\n"+
		"teacher-smith,teachers,4900,0.000001,,\n"+
		"teacher-jones,teachers,1,,,\n"+
		"kid-a,kids,0.5,,2,true\n"+
		"solo,,3,,,\n", http.StatusOK)
	e.admin(t, "POST", "/users/teacher-jones/deactivate", "").requireStatus(t, http.StatusOK)
	key := e.importCSV(t, "", "username,project,initial_credits\nactive-one,,10\n", http.StatusOK).Rows[0].APIKey
	res, err := e.Engine.Charge(e.ctx, key, metering.Micro/2, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	e.Drain(t) // last_activity_at comes from the ledger

	_, all := e.readExport(t, viewerSecret, "")
	require.Equal(t, []string{"active-one", "kid-a", "solo", "teacher-jones", "teacher-smith"}, names(all))
	smith := all[4]
	require.Equal(t, []string{"teacher-smith", "teachers", "4900.000001", "9975.000001", "active", "",
		"4900", "0.000001", "75", "5000", "0", "false"}, smith[:12])
	_, err = time.Parse(time.RFC3339, smith[12])
	require.NoError(t, err)
	require.Equal(t, []string{"kid-a", "kids", "0.5", "0.5", "active", "", "0.5", "0", "0", "0", "2", "true"}, all[1][:12])
	require.Equal(t, "inactive", all[3][4])
	require.Equal(t, "9.5", all[0][2])
	last, err := time.Parse(time.RFC3339, all[0][5])
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), last, time.Hour)

	for query, want := range map[string][]string{
		"?project=teachers":                {"teacher-jones", "teacher-smith"},
		"?project=none":                    {"active-one", "solo"},
		"?status=inactive":                 {"teacher-jones"},
		"?status=active&project=teachers":  {"teacher-smith"},
		"?search=teacher":                  {"teacher-jones", "teacher-smith"},
		"?search=O&sort=username":          {"active-one", "solo", "teacher-jones"},
		"?project=kids&status=inactive":    {},
		"?project=nosuchproject&search=zz": {},
	} {
		_, recs := e.readExport(t, adminSecret, query)
		require.Equal(t, want, names(recs), query)
	}
	// Every sort of GET /users works, in the same order as the list.
	for _, sort := range []string{"-credits", "-activity", "username"} {
		list := e.admin(t, "GET", "/users?limit=1000&sort="+sort, "").requireStatus(t, http.StatusOK)
		var listed []string
		for _, u := range list.body["users"].([]any) {
			listed = append(listed, u.(map[string]any)["username"].(string))
		}
		_, exported := e.readExport(t, adminSecret, "?sort="+sort)
		require.Equal(t, listed, names(exported), "export order for sort=%s", sort)
	}
	_, byCredits := e.readExport(t, adminSecret, "?sort=-credits")
	require.Equal(t, "teacher-smith", byCredits[0][0], "most personal credits first")

	for query, field := range map[string]string{
		"?status=gone":      "status",
		"?project=Bad Name": "project",
		"?sort=credits":     "sort",
		"?sort=size":        "sort",
		"?limit=5":          "limit",
		"?cursor=abc":       "cursor",
	} {
		e.admin(t, "GET", "/users/export"+strings.ReplaceAll(query, " ", "%20"), "").
			requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
}

// TestImportAndExportManyRows imports 10,000 users in one request (the
// time is logged, not asserted) and exports them back, streamed.
func TestImportAndExportManyRows(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"school","allowance":{"amount":5,"period":"weekly"}}`).requireStatus(t, http.StatusCreated)
	const n = 10_000
	var b strings.Builder
	b.WriteString("username,project,initial_credits,purchased\n")
	for i := range n {
		project := "school"
		if i%3 == 0 {
			project = ""
		}
		fmt.Fprintf(&b, "student-%05d,%s,%d.25,0.000001\n", i, project, i%100)
	}
	start := time.Now()
	a := e.importCSV(t, "", b.String(), http.StatusOK)
	t.Logf("imported %d users through HTTP in %.2fs", n, time.Since(start).Seconds())
	require.Equal(t, n, a.Created)
	require.Equal(t, n, e.countRows(t, "users"))
	// student-09998 is in the school: allowance 5 + awarded 98.25 + purchased 0.000001.
	res, err := e.Engine.Charge(e.ctx, a.Rows[n-2].APIKey, 103*metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)

	start = time.Now()
	resp, recs := e.readExport(t, viewerSecret, "")
	t.Logf("exported %d users in %.2fs", len(recs), time.Since(start).Seconds())
	require.Len(t, recs, n)
	// Streamed: no Content-Length, sent in chunks as pages are written.
	require.Equal(t, int64(-1), resp.ContentLength)
	require.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	require.Equal(t, "student-00000", recs[0][0])
	require.Equal(t, "", recs[0][1])
	require.Equal(t, "0.250001", recs[0][2])
	require.Equal(t, []string{"student-09998", "school", "0.250001", "0.250001", "active"}, recs[n-2][:5],
		"98.25 + 0.000001 - 98 drawn after the allowance")
	require.Equal(t, "0", recs[n-2][8], "the allowance was used")

	_, recs = e.readExport(t, viewerSecret, "?project=none")
	require.Len(t, recs, (n+2)/3)
	e.Drain(t)
	e.AssertConsistent(t)
}

// TestCSVRoutesPrecedence: the literal paths win over /users/{username}
// (Go's ServeMux prefers the more specific pattern), and other methods
// still reach the user routes or answer 405.
func TestCSVRoutesPrecedence(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/users", `{"username":"import"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"export"}`).requireStatus(t, http.StatusCreated)
	_, recs := e.readExport(t, adminSecret, "")
	require.Equal(t, []string{"export", "import"}, names(recs))
	r := e.admin(t, "GET", "/users/import", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "import", r.body["username"])
	e.admin(t, "POST", "/users/export/credits", `{"delta":1}`).requireStatus(t, http.StatusOK)
	r = e.admin(t, "POST", "/users/export", "")
	r.requireError(t, http.StatusMethodNotAllowed, "method_not_allowed", "")
	require.Contains(t, r.header.Get("Allow"), "GET")
}
