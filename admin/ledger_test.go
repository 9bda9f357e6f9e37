package admin_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/metering"
)

// healthOf asks handler h for /health (no token needed).
func healthOf(t *testing.T, h http.Handler) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", base+"/health", nil))
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
	return rec.Code, m
}

// TestHealthReportsStalledReconciler: a reconciler that cannot record
// anything (here Postgres refuses every event, as an outage would) makes
// /health answer 503 naming the reconciler once the oldest unreconciled
// event is older than max_reconcile_lag, with the lag still growing; 200
// again once the ledger has caught up.
func TestHealthReportsStalledReconciler(t *testing.T) {
	t.Parallel()
	e := setup(t)
	strict, err := admin.New(e.Engine, admin.Config{MaxReconcileLag: time.Second,
		Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	lenient, err := admin.New(e.Engine, admin.Config{MaxReconcileLag: time.Hour,
		Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)

	// The user's initial-credit event is in the stream, and Postgres now
	// refuses every event as it would during an outage.
	e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	remove := e.RefuseEvents(t, "true", "53000") // insufficient_resources: not the rows' fault
	r, err := e.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "stalled", Block: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(r.Stop)

	code, m := healthOf(t, lenient)
	require.Equal(t, http.StatusOK, code, "%v", m)
	require.Equal(t, "ok", m["reconciler"])
	first := m["reconcile_lag_seconds"].(float64)

	var last map[string]any
	require.Eventually(t, func() bool {
		code, last = healthOf(t, strict)
		return code == http.StatusServiceUnavailable
	}, 30*time.Second, 50*time.Millisecond, "a stalled reconciler makes /health 503")
	require.Equal(t, "ok", last["redis"], "only the reconciler is named")
	require.Equal(t, "ok", last["postgres"])
	msg, _ := last["reconciler"].(string)
	require.True(t, strings.HasPrefix(msg, "error: oldest unreconciled event is "), msg)
	require.True(t, strings.HasSuffix(msg, " old (limit 1s)"), msg)
	lag := last["reconcile_lag_seconds"].(float64)
	require.Greater(t, lag, 1.0)
	require.Greater(t, lag, first, "the lag grows while the reconciler is stalled")

	remove()
	require.Eventually(t, func() bool {
		code, last = healthOf(t, strict)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "healthy again once the ledger caught up")
	require.Equal(t, "ok", last["reconciler"])
	r.Stop()
	e.Drain(t)
	e.AssertConsistent(t)
}

// TestDeadLettersRoute: GET /dead-letters lists what the reconciler could
// not record, newest first, with the reason and the event decoded, pages
// with limit and cursor; /health counts them.
func TestDeadLettersRoute(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	ann, err := e.Engine.GetUser(e.ctx, "ann")
	require.NoError(t, err)
	// Into ann's shard's stream, where her own events would be.
	stream := e.Engine.Keys().ShardOf(ann.ProjectID, ann.ID).Events()
	xadd := func(fields ...any) string {
		id, err := e.Redis.XAdd(e.ctx, &redis.XAddArgs{Stream: stream, Values: fields}).Result()
		require.NoError(t, err)
		return id
	}
	// A balance that overflows in Postgres, and an entry that does not parse.
	overflow := xadd("id", "overflow-1", "k", "adjust", "t", "1772452800000", "u", ann.ID, "un", "ann",
		"aw", "9223372036854775807", "ac", "ops", "no", "bad\x00")
	malformed := xadd("id", "malformed-1", "k", "usage", "c", "lots")
	e.Drain(t) // the reconciler goes on: the stream empties

	r := e.do(t, "GET", base+"/dead-letters", viewerSecret, "").requireStatus(t, http.StatusOK)
	letters := r.body["dead_letters"].([]any)
	require.Len(t, letters, 2)
	require.NotContains(t, r.body, "next_cursor")
	byEntry := map[string]map[string]any{}
	for _, l := range letters {
		m := requireKeys(t, l, "id", "at", "entry", "reason", "consumer", "money", "event", "fields")
		byEntry[m["entry"].(string)] = m
		requireRFC3339(t, m["at"])
		require.Equal(t, "drain", m["consumer"])
	}
	bad := byEntry[malformed]
	require.Contains(t, bad["reason"], "malformed event")
	require.Nil(t, bad["event"])
	require.Equal(t, false, bad["money"])
	require.Equal(t, "lots", bad["fields"].(map[string]any)["c"])

	lost := byEntry[overflow]
	require.Contains(t, lost["reason"], "SQLSTATE 22003")
	require.Equal(t, true, lost["money"])
	ev := lost["event"].(map[string]any)
	require.Equal(t, "overflow-1", ev["id"])
	require.Equal(t, "adjust", ev["kind"])
	require.Equal(t, "ann", ev["username"])
	require.Equal(t, num("9223372036854.775807"), ev["awarded"], "credits as exact decimals")
	require.Equal(t, "bad\x00", ev["note"], "JSON carries the text as it was")
	require.Equal(t, letters[0].(map[string]any)["id"], e.admin(t, "GET", "/dead-letters?limit=1", "").body["dead_letters"].([]any)[0].(map[string]any)["id"], "newest first")

	page := e.admin(t, "GET", "/dead-letters?limit=1", "").requireStatus(t, http.StatusOK)
	require.Len(t, page.body["dead_letters"], 1)
	next := page.body["next_cursor"].(string)
	page = e.admin(t, "GET", "/dead-letters?limit=1&cursor="+next, "").requireStatus(t, http.StatusOK)
	require.Equal(t, letters[1].(map[string]any)["id"], page.body["dead_letters"].([]any)[0].(map[string]any)["id"])
	require.NotContains(t, page.body, "next_cursor")
	e.admin(t, "GET", "/dead-letters?limit=0", "").requireError(t, http.StatusBadRequest, "invalid_argument", "limit")
	e.admin(t, "GET", "/dead-letters?cursor=x", "").requireError(t, http.StatusBadRequest, "invalid_argument", "cursor")
	e.admin(t, "GET", "/dead-letters?since=1", "").requireError(t, http.StatusBadRequest, "invalid_argument", "since")
	e.do(t, "GET", base+"/dead-letters", "", "").requireError(t, http.StatusUnauthorized, "unauthenticated", "")

	h := e.do(t, "GET", base+"/health", "", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("2"), h.body["dead_letters"])
	e.AssertConsistent(t)
}

// TestNotesMustBeStorable: a note Postgres could not store (NUL), with a
// control character, or too long is refused with 400 naming note, and
// nothing is written; line breaks and tabs are fine.
func TestNotesMustBeStorable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"p","pool":{"enabled":true,"balance":5}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"bob"}`).requireStatus(t, http.StatusCreated)
	e.Drain(t)
	events, audits := e.countRows(t, "events"), e.countRows(t, "audit_log")
	// Every shard's stream: the three users' events are in their shards.
	streamLen := func() int64 {
		var total int64
		for _, sh := range e.Engine.Keys().Shards() {
			n, err := e.Redis.XLen(e.ctx, sh.Events()).Result()
			require.NoError(t, err)
			total += n
		}
		return total
	}
	for _, note := range []string{`a\u0000b`, `bell\u0007`, `esc\u001b[2J`, `c1\u0085`, strings.Repeat("n", metering.MaxNoteLength+1)} {
		note := `"` + note + `"`
		e.admin(t, "POST", "/users/ann/credits", `{"delta":1,"note":`+note+`}`).requireError(t, http.StatusBadRequest, "invalid_argument", "note")
		e.admin(t, "POST", "/projects/p/pool", `{"delta":1,"note":`+note+`}`).requireError(t, http.StatusBadRequest, "invalid_argument", "note")
		e.admin(t, "POST", "/transfers", `{"from":"ann","to":"bob","amount":1,"note":`+note+`}`).requireError(t, http.StatusBadRequest, "invalid_argument", "note")
	}
	require.Equal(t, int64(0), streamLen(), "no balance changed in Redis")
	require.Equal(t, events, e.countRows(t, "events"))
	require.Equal(t, audits, e.countRows(t, "audit_log"))
	r := e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("10"), r.body["awarded"])

	ok := `"line one\nline two\tand a tab — ünïcode"`
	e.admin(t, "POST", "/users/ann/credits", `{"delta":1,"note":`+ok+`}`).requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/projects/p/pool", `{"delta":1,"note":`+ok+`}`).requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/transfers", `{"from":"ann","to":"bob","amount":1,"note":`+ok+`}`).requireStatus(t, http.StatusOK)
	var n int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM events WHERE note = $1`,
		"line one\nline two\tand a tab — ünïcode").Scan(&n))
	require.Equal(t, 4, n, "the notes are recorded as typed (the transfer's on both events)")
	e.Drain(t)
	e.AssertConsistent(t)
}

// TestUsageReportsAnyLedgerText: rows already in the ledger with names no
// longer accepted (control characters, formula starts) still report: JSON
// answers 200 with the names exact, CSV neutralises formula cells and
// keeps negative numbers as numbers.
func TestUsageReportsAnyLedgerText(t *testing.T) {
	t.Parallel()
	e := setup(t)
	models := []string{"ctl\x01\x1f\x7f", "=HYPERLINK(\"http://x\",\"y\")", "+1+2", "@SUM(A1)", "-cmd", "\tlead", "\rcr", "-5", "ok-model"}
	day := time.Now().UTC().Format(time.DateOnly)
	for i, m := range models {
		_, err := e.DB.Exec(e.ctx, `INSERT INTO usage_daily (day, user_id, project_id, model, username, project_name,
			requests, credits, allowance, pool, awarded, purchased) VALUES ($1, $2, 0, $3, 'ann', '', 1, 1000000, -200000000, 0, 0, -12500000)`,
			day, i+1, m)
		require.NoError(t, err)
	}

	r := e.admin(t, "GET", "/usage?group_by=model", "").requireStatus(t, http.StatusOK)
	var got []string
	for _, row := range r.body["rows"].([]any) {
		got = append(got, row.(map[string]any)["model"].(string))
	}
	require.ElementsMatch(t, models, got, "every name, exactly")

	req, err := http.NewRequest("GET", e.srv.URL+base+"/usage?group_by=model&format=csv", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	records, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"model", "requests", "credits", "allowance", "pool", "awarded", "purchased"}, records[0])
	cells := map[string]bool{}
	for _, rec := range records[1:] {
		cells[rec[0]] = true
		require.Equal(t, []string{"1", "1", "-200", "0", "0", "-12.5"}, rec[1:], "numbers stay numbers")
	}
	for _, want := range []string{"ctl\x01\x1f\x7f", `'=HYPERLINK("http://x","y")`, "'+1+2", "'@SUM(A1)", "'-cmd", "'\tlead", "'\rcr", "-5", "ok-model"} {
		require.True(t, cells[want], "cell %q in %v", want, cells)
	}
}

func TestSafeCSVCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":              "",
		"ann":           "ann",
		"=1+1":          "'=1+1",
		"+1":            "'+1",
		"@x":            "'@x",
		"-x":            "'-x",
		"\tx":           "'\tx",
		"\rx":           "'\rx",
		"-200":          "-200",
		"-12.5":         "-12.5",
		"12.5":          "12.5",
		"-":             "'-",
		"-1.":           "'-1.",
		"-.5":           "'-.5",
		"-1.2.3":        "'-1.2.3",
		"-1e5":          "'-1e5",
		"-1+cmd":        "'-1+cmd",
		"a=b":           "a=b",
		" =not-leading": " =not-leading",
	} {
		require.Equal(t, want, admin.SafeCSVCell(in), "%q", in)
	}
	var b strings.Builder
	w := admin.NewCSVWriter(&b)
	rec := []string{"=x", "-3", "y"}
	require.NoError(t, w.Write(rec))
	w.Flush()
	require.NoError(t, w.Error())
	require.Equal(t, "'=x,-3,y\n", b.String())
	require.Equal(t, []string{"=x", "-3", "y"}, rec, "the caller's record is left alone")
}
