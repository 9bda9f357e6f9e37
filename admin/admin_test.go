package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

const (
	adminSecret  = "admin-secret-0123456789"
	viewerSecret = "viewer-secret-0123456789"
	base         = "/admin/v1"
)

// env is one test's world: isolated stores, an engine and the admin API
// served over loopback HTTP.
type env struct {
	*meteringtest.Bundle
	srv  *httptest.Server
	ctx  context.Context
	logs *observer.ObservedLogs
}

func setup(t *testing.T) *env {
	t.Helper()
	return setupWith(t, meteringtest.Options{})
}

// secondAdminSecret is the token of a second admin, "alice", for actor filters.
const secondAdminSecret = "alice-secret-0123456789"

// setupWith builds a test's stores, engine (with opts: a clock, a
// key-encryption key) and admin API with three tokens: "ops" (admin),
// "reports" (viewer) and "alice" (admin).
func setupWith(t testing.TB, opts meteringtest.Options) *env {
	t.Helper()
	b := meteringtest.New(t, opts)
	core, logs := observer.New(zap.DebugLevel)
	h, err := admin.New(b.Engine, admin.Config{Logger: zap.New(core), Tokens: []admin.Token{
		{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin},
		{Name: "reports", Secret: viewerSecret, Role: admin.RoleViewer},
		{Name: "alice", Secret: secondAdminSecret, Role: admin.RoleAdmin},
	}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{Bundle: b, srv: srv, ctx: context.Background(), logs: logs}
	t.Cleanup(func() { e.requireNoSecretsLogged(t) })
	return e
}

// requireNoSecretsLogged checks that no log entry carries a token or a key.
func (e *env) requireNoSecretsLogged(t testing.TB) {
	for _, entry := range e.logs.All() {
		fields, err := json.Marshal(entry.ContextMap())
		require.NoError(t, err)
		line := entry.Message + " " + string(fields)
		require.NotContains(t, line, adminSecret)
		require.NotContains(t, line, viewerSecret)
		require.NotContains(t, line, "tg_", "an API key was logged: %s", line)
		require.NotContains(t, line, metering.InviteTokenPrefix, "an invite token was logged: %s", line)
	}
}

func redisClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
}

// response is an answer with its body decoded (numbers kept exact).
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (e *env) do(t *testing.T, method, path, token, body string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := &response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && method != http.MethodHead {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "body %s", raw)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&r.body), "body %s", raw)
	}
	return r
}

// admin sends a request with the admin token.
func (e *env) admin(t *testing.T, method, path, body string) *response {
	t.Helper()
	return e.do(t, method, base+path, adminSecret, body)
}

func (r *response) requireStatus(t *testing.T, status int) *response {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.raw)
	return r
}

// requireError checks the error body: status, code and (when not "") field.
func (r *response) requireError(t *testing.T, status int, code, field string) {
	t.Helper()
	r.requireStatus(t, status)
	e, ok := r.body["error"].(map[string]any)
	require.True(t, ok, "error object in %s", r.raw)
	require.Equal(t, code, e["code"], "body %s", r.raw)
	f, _ := e["field"].(string)
	requireSentence(t, e["message"].(string), f)
	if field != "" {
		require.Equal(t, field, e["field"], "body %s", r.raw)
	} else {
		require.NotContains(t, e, "field")
	}
}

// chainSuffix finds what Go error wrapping leaves in a text: a sentinel's
// name after or before a colon ("...: conflict", "not found: ...").
var chainSuffix = regexp.MustCompile(`(?i)(: (not found|conflict|insufficient balance|key reveal is disabled|metering unavailable|credits out of range)\b)|^(conflict|not found|insufficient balance):|json: |%!`)

// wrongPlural finds a count of one with a plural noun ("1 requests") and
// the lazy "(s)".
var wrongPlural = regexp.MustCompile(`(^|[^0-9.])1 (\w+ )?(requests|users|rows|times|columns|fields|bytes|credits|days|entries|projects|keys|lines|characters|digits|parameters|values|errors)\b|\(s\)`)

// requireSentence checks that an error message reads as a sentence on its
// own: it starts with an upper-case letter or a digit (or with the name of
// the field it is about), ends with a full stop or a question mark, and
// holds no Go error-chain remains, wrong plural or regular expression.
func requireSentence(t testing.TB, msg, field string) {
	t.Helper()
	require.NotEmpty(t, msg)
	first, _ := utf8.DecodeRuneInString(msg)
	startsOK := unicode.IsUpper(first) || unicode.IsDigit(first) || first == '"' ||
		(field != "" && strings.HasPrefix(msg, field+" "))
	require.True(t, startsOK, "message %q (field %q) does not start a sentence", msg, field)
	require.True(t, strings.HasSuffix(msg, ".") || strings.HasSuffix(msg, "?"), "message %q does not end a sentence", msg)
	require.False(t, chainSuffix.MatchString(msg), "message %q holds an error chain's remains", msg)
	require.False(t, wrongPlural.MatchString(msg), "message %q has a wrong plural", msg)
	require.NotContains(t, msg, "^[", "message %q quotes a regular expression", msg)
	require.NotContains(t, msg, "..", "message %q ends twice", msg)
}

// requireKeys checks that obj has exactly these keys.
func requireKeys(t *testing.T, obj any, keys ...string) map[string]any {
	t.Helper()
	m, ok := obj.(map[string]any)
	require.True(t, ok, "not an object: %v", obj)
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	require.Equal(t, keys, got)
	return m
}

func num(s string) json.Number { return json.Number(s) }

var userKeys = []string{"username", "project", "status", "personal_credits", "awarded", "purchased",
	"allowance_remaining", "pool_available", "effective_credits", "monthly_grant", "partner", "next_grant_at", "key",
	"has_usage", "in_flight", "last_activity_at", "created_at"}

var projectKeys = []string{"name", "allowance", "pool", "users", "created_at"}

func requireRFC3339(t *testing.T, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "time %v is not a string", v)
	tm, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return tm
}

func (e *env) countRows(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, e.DB.QueryRow(e.ctx, "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	b := meteringtest.New(t, meteringtest.Options{})
	ok := admin.Token{Name: "ops", Secret: "s1", Role: admin.RoleAdmin}
	for name, tc := range map[string]struct {
		cfg  admin.Config
		want string
	}{
		"no tokens":        {admin.Config{}, "tokens"},
		"empty secret":     {admin.Config{Tokens: []admin.Token{ok, {Name: "x", Role: admin.RoleAdmin}}}, "tokens[1].secret"},
		"duplicate secret": {admin.Config{Tokens: []admin.Token{ok, {Name: "y", Secret: "s1", Role: admin.RoleViewer}}}, "tokens[1].secret"},
		"unknown role":     {admin.Config{Tokens: []admin.Token{{Name: "z", Secret: "s", Role: "root"}}}, "tokens[0].role"},
		"empty role":       {admin.Config{Tokens: []admin.Token{{Name: "z", Secret: "s"}}}, "tokens[0].role"},
		"empty name":       {admin.Config{Tokens: []admin.Token{{Secret: "s", Role: admin.RoleAdmin}}}, "tokens[0].name"},
		// The name is every write's actor, in events and the audit log.
		"NUL in name":        {admin.Config{Tokens: []admin.Token{ok, {Name: "ev\x00il", Secret: "s2", Role: admin.RoleAdmin}}}, "tokens[1].name"},
		"invalid UTF-8 name": {admin.Config{Tokens: []admin.Token{{Name: "b\xffd", Secret: "s2", Role: admin.RoleAdmin}}}, "tokens[0].name"},
		"two-line name":      {admin.Config{Tokens: []admin.Token{{Name: "a\nb", Secret: "s2", Role: admin.RoleAdmin}}}, "tokens[0].name"},
		"overlong name":      {admin.Config{Tokens: []admin.Token{{Name: strings.Repeat("n", metering.MaxActorLength+1), Secret: "s2", Role: admin.RoleAdmin}}}, "tokens[0].name"},
		"negative lag limit": {admin.Config{MaxReconcileLag: -time.Second, Tokens: []admin.Token{ok}}, "max_reconcile_lag"},
		"relative base":      {admin.Config{BasePath: "admin", Tokens: []admin.Token{ok}}, "base_path"},
		"negative body":      {admin.Config{MaxBodyBytes: -1, Tokens: []admin.Token{ok}}, "max_body_bytes"},
	} {
		_, err := admin.New(b.Engine, tc.cfg)
		require.Error(t, err, name)
		require.True(t, strings.HasPrefix(err.Error(), tc.want+":"), "%s: %v", name, err)
		require.NotContains(t, err.Error(), "s1", "%s: the secret is in the error", name)
	}
	_, err := admin.New(nil, admin.Config{Tokens: []admin.Token{ok}})
	require.Error(t, err)
	_, err = admin.New(b.Engine, admin.Config{Tokens: []admin.Token{ok}})
	require.NoError(t, err)
	_, err = admin.New(b.Engine, admin.Config{Tokens: []admin.Token{{Name: "Ops team — Ünïcode", Secret: "s", Role: admin.RoleAdmin}}})
	require.NoError(t, err, "any one-line printable name is fine")

	for s, want := range map[string]admin.Role{"admin": admin.RoleAdmin, "viewer": admin.RoleViewer} {
		r, err := admin.ParseRole(s)
		require.NoError(t, err)
		require.Equal(t, want, r)
	}
	for _, s := range []string{"", "Admin", "root"} {
		_, err := admin.ParseRole(s)
		require.Error(t, err, s)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.do(t, "GET", base+"/health", "", "").requireStatus(t, http.StatusOK)
	m := requireKeys(t, r.body, "redis", "postgres", "reconciler", "reconcile_lag_seconds", "dead_letters")
	require.Equal(t, "ok", m["redis"])
	require.Equal(t, "ok", m["postgres"])
	require.Equal(t, "ok", m["reconciler"])
	require.Equal(t, num("0"), m["dead_letters"])
	lag, ok := m["reconcile_lag_seconds"].(json.Number)
	require.True(t, ok, "lag is a number: %s", r.raw)
	f, err := lag.Float64()
	require.NoError(t, err)
	require.GreaterOrEqual(t, f, 0.0)
	// A wrong token does not matter on /health.
	e.do(t, "GET", base+"/health", "nope", "").requireStatus(t, http.StatusOK)
	e.do(t, "POST", base+"/health", "", "").requireError(t, http.StatusMethodNotAllowed, "method_not_allowed", "")
}

func TestHealthReportsFailingRedis(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// An engine whose Redis does not answer: nothing listens on port 1.
	dead := redisClient("127.0.0.1:1")
	t.Cleanup(func() { dead.Close() })
	eng, err := metering.NewEngine(dead, e.DB, e.Config)
	require.NoError(t, err)
	t.Cleanup(eng.Close)
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs // checked for secrets at cleanup
	h, err := admin.New(eng, admin.Config{HealthTimeout: 500 * time.Millisecond, Logger: zap.New(core),
		Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", base+"/health", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m))
	require.True(t, strings.HasPrefix(m["redis"].(string), "error: "), "%v", m)
	require.Equal(t, "ok", m["postgres"])
	require.Equal(t, "unknown", m["reconciler"])
	require.Contains(t, m, "reconcile_lag_seconds")
	require.Nil(t, m["dead_letters"])

	// Other routes fail closed with 503 unavailable, not 500.
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", base+"/projects", strings.NewReader(`{"name":"p"}`))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"code":"unavailable"`)
	require.NotContains(t, rec.Body.String(), "127.0.0.1:1", "internals stay in the log")
	require.Equal(t, 1, logs.FilterMessage("admin request failed").Len(), "the failure is logged")
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"p"}`).requireStatus(t, http.StatusCreated)

	for name, header := range map[string]string{
		"missing":      "",
		"wrong token":  "Bearer not-the-secret",
		"basic scheme": "Basic " + adminSecret,
		"bare secret":  adminSecret,
		"empty bearer": "Bearer ",
		"prefix only":  "Bearer " + adminSecret[:len(adminSecret)-1],
		"longer":       "Bearer " + adminSecret + "x",
	} {
		req, err := http.NewRequest("GET", e.srv.URL+base+"/projects", nil)
		require.NoError(t, err)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		require.Contains(t, string(body), `"code":"unauthenticated"`, name)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
	}
	// Unknown routes do not reveal themselves without a token either.
	e.do(t, "GET", base+"/nope", "", "").requireError(t, http.StatusUnauthorized, "unauthenticated", "")

	// The scheme is case-insensitive.
	req, _ := http.NewRequest("GET", e.srv.URL+base+"/projects", nil)
	req.Header.Set("Authorization", "bearer "+viewerSecret)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// A viewer reads but does not write.
	e.do(t, "GET", base+"/projects", viewerSecret, "").requireStatus(t, http.StatusOK)
	e.do(t, "GET", base+"/projects/p", viewerSecret, "").requireStatus(t, http.StatusOK)
	e.do(t, "GET", base+"/users", viewerSecret, "").requireStatus(t, http.StatusOK)
	e.do(t, "POST", base+"/projects", viewerSecret, `{"name":"q"}`).requireError(t, http.StatusForbidden, "forbidden", "")
	e.do(t, "POST", base+"/users", viewerSecret, `{"username":"ann"}`).requireError(t, http.StatusForbidden, "forbidden", "")
	e.do(t, "POST", base+"/projects/p/pool", viewerSecret, `{"delta":5}`).requireError(t, http.StatusForbidden, "forbidden", "")
	require.Equal(t, 1, e.countRows(t, "projects"))
	require.Equal(t, 0, e.countRows(t, "users"))
	e.do(t, "GET", base+"/projects/q", viewerSecret, "").requireError(t, http.StatusNotFound, "not_found", "")

	// Unknown routes and methods answer JSON.
	e.admin(t, "GET", "/nope", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.do(t, "GET", "/elsewhere", adminSecret, "").requireError(t, http.StatusNotFound, "not_found", "")
	r := e.admin(t, "DELETE", "/projects", "")
	r.requireError(t, http.StatusMethodNotAllowed, "method_not_allowed", "")
	require.Contains(t, r.header.Get("Allow"), "POST")
	require.Contains(t, r.header.Get("Allow"), "GET")

	// The actor of a write is the token's name.
	var actor string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT actor FROM audit_log WHERE action = 'project.create'`).Scan(&actor))
	require.Equal(t, "ops", actor)
}

func TestProjects(t *testing.T) {
	t.Parallel()
	e := setup(t)

	r := e.admin(t, "POST", "/projects", `{"name":"teachers",
		"allowance":{"amount":100.5,"period":"daily","timezone":"Europe/Berlin"},
		"pool":{"enabled":true,"balance":5000,"per_user_limit":null}}`).requireStatus(t, http.StatusCreated)
	p := requireKeys(t, r.body, projectKeys...)
	require.Equal(t, "teachers", p["name"])
	a := requireKeys(t, p["allowance"], "amount", "period", "timezone")
	require.Equal(t, num("100.5"), a["amount"])
	require.Equal(t, "daily", a["period"])
	require.Equal(t, "Europe/Berlin", a["timezone"])
	pool := requireKeys(t, p["pool"], "enabled", "balance", "per_user_limit")
	require.Equal(t, true, pool["enabled"])
	require.Equal(t, num("5000"), pool["balance"])
	require.Nil(t, pool["per_user_limit"])
	require.Equal(t, num("0"), p["users"])
	requireRFC3339(t, p["created_at"])
	require.Contains(t, string(r.raw), `"amount":100.5,`, "credits are exact JSON numbers")

	// Defaults: period none, time zone UTC, no pool; a per-user limit.
	r = e.admin(t, "POST", "/projects", `{"name":"solo.team","pool":{"per_user_limit":2.000001}}`).requireStatus(t, http.StatusCreated)
	require.Equal(t, map[string]any{"amount": num("0"), "period": "none", "timezone": "UTC"}, r.body["allowance"])
	require.Equal(t, map[string]any{"enabled": false, "balance": num("0"), "per_user_limit": num("2.000001")}, r.body["pool"])

	r = e.admin(t, "GET", "/projects", "").requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, "projects")
	list := r.body["projects"].([]any)
	require.Len(t, list, 2)
	require.Equal(t, "solo.team", requireKeys(t, list[0], projectKeys...)["name"])
	require.Equal(t, "teachers", list[1].(map[string]any)["name"])

	r = e.admin(t, "GET", "/projects/teachers", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("5000"), requireKeys(t, r.body, projectKeys...)["pool"].(map[string]any)["balance"])

	// The pool moves both ways, never below zero.
	r = e.admin(t, "POST", "/projects/teachers/pool", `{"delta":-4999.75,"note":"spent"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("0.25"), requireKeys(t, r.body, projectKeys...)["pool"].(map[string]any)["balance"])
	e.admin(t, "POST", "/projects/teachers/pool", `{"delta":-0.250001}`).requireError(t, http.StatusConflict, "conflict", "")
	r = e.admin(t, "POST", "/projects/teachers/pool", `{"delta":500}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("500.25"), r.body["pool"].(map[string]any)["balance"])
	r = e.admin(t, "GET", "/projects/teachers", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("500.25"), r.body["pool"].(map[string]any)["balance"])

	// Users are counted.
	e.admin(t, "POST", "/users", `{"username":"ann","project":"teachers"}`).requireStatus(t, http.StatusCreated)
	r = e.admin(t, "GET", "/projects/teachers", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("1"), r.body["users"])

	e.admin(t, "POST", "/projects", `{"name":"teachers"}`).requireError(t, http.StatusConflict, "conflict", "")
	// Past the maximum balance is out of range, not a conflict.
	e.admin(t, "POST", "/projects", `{"name":"full","pool":{"balance":9007199254.740991}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects/full/pool", `{"delta":0.000001}`).requireError(t, http.StatusBadRequest, "invalid_argument", "delta")
	e.admin(t, "GET", "/projects/nope", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "POST", "/projects/nope/pool", `{"delta":1}`).requireError(t, http.StatusNotFound, "not_found", "")

	// Bad input: 400 naming the field, nothing written.
	projects, audits := e.countRows(t, "projects"), e.countRows(t, "audit_log")
	for body, field := range map[string]string{
		`{}`:                  "name",
		`{"name":"Bad Name"}`: "name",
		`{"name":"-x"}`:       "name",
		`{"name":7}`:          "name",
		`{"name":"x","allowance":{"amount":1.1234567}}`:  "allowance.amount",
		`{"name":"x","allowance":{"amount":-1}}`:         "allowance.amount",
		`{"name":"x","allowance":{"amount":"12"}}`:       "allowance.amount",
		`{"name":"x","allowance":{"amount":1e20}}`:       "allowance.amount",
		`{"name":"x","allowance":{"period":"hourly"}}`:   "allowance.period",
		`{"name":"x","allowance":{"timezone":"Mars/X"}}`: "allowance.timezone",
		`{"name":"x","pool":{"balance":0.0000001}}`:      "pool.balance",
		`{"name":"x","pool":{"balance":-3}}`:             "pool.balance",
		`{"name":"x","pool":{"per_user_limit":-1}}`:      "pool.per_user_limit",
		`{"name":"x","pool":{"enabled":"yes"}}`:          "pool.enabled",
		`{"name":"x","colour":"red"}`:                    "colour",
		`{"name":"x","pool":{"size":1}}`:                 "size",
	} {
		e.admin(t, "POST", "/projects", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	for _, body := range []string{``, `[]`, `{"name":`, `{"name":"x"} {}`, `nonsense`} {
		e.admin(t, "POST", "/projects", body).requireError(t, http.StatusBadRequest, "invalid_argument", "")
	}
	for body, field := range map[string]string{
		`{}`:                   "delta",
		`{"delta":0}`:          "delta",
		`{"delta":null}`:       "delta",
		`{"delta":1.0000001}`:  "delta",
		`{"delta":1,"x":true}`: "x",
		`{"delta":1,"note":3}`: "note",
	} {
		e.admin(t, "POST", "/projects/teachers/pool", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	require.Equal(t, projects, e.countRows(t, "projects"))
	require.Equal(t, audits, e.countRows(t, "audit_log"))
	r = e.admin(t, "GET", "/projects/teachers", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("500.25"), r.body["pool"].(map[string]any)["balance"])

	e.Drain(t)
	e.AssertConsistent(t)
}

func TestCreateAndGetUser(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"teachers","allowance":{"amount":75,"period":"daily"},
		"pool":{"enabled":true,"balance":5000}}`).requireStatus(t, http.StatusCreated)

	expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	r := e.admin(t, "POST", "/users", `{"username":"teacher-smith","project":"teachers",
		"initial_credits":4900,"purchased":0.5,"monthly_grant":10,"partner":true,
		"key_expires_at":"`+expires.Format(time.RFC3339)+`"}`).requireStatus(t, http.StatusCreated)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	requireKeys(t, r.body, "user", "api_key")
	key := r.body["api_key"].(string)
	require.True(t, strings.HasPrefix(key, "tg_"), key)
	require.True(t, metering.WellFormedKey(key))
	u := requireKeys(t, r.body["user"], userKeys...)
	require.Equal(t, "teacher-smith", u["username"])
	require.Equal(t, "teachers", u["project"])
	require.Equal(t, "active", u["status"])
	// The monthly grant of 10 is first paid on the next 1st, not at creation.
	require.Equal(t, num("4900.5"), u["personal_credits"])
	require.Equal(t, num("4900"), u["awarded"])
	require.Equal(t, num("0.5"), u["purchased"])
	require.Equal(t, num("75"), u["allowance_remaining"])
	require.Equal(t, num("5000"), u["pool_available"])
	require.Equal(t, num("9975.5"), u["effective_credits"])
	require.Equal(t, num("10"), u["monthly_grant"])
	require.Equal(t, true, u["partner"])
	// next_grant_at: the 1st of the month after creation (the project's zone is UTC).
	next, created := requireRFC3339(t, u["next_grant_at"]), requireRFC3339(t, u["created_at"])
	cy, cm, _ := created.UTC().Date()
	require.True(t, time.Date(cy, cm+1, 1, 0, 0, 0, 0, time.UTC).Equal(next), "next_grant_at %v, created_at %v", next, created)
	k := requireKeys(t, u["key"], "prefix", "status", "created_at", "expires_at")
	require.Equal(t, "active", k["status"])
	require.Equal(t, key[:7], k["prefix"])
	requireRFC3339(t, k["created_at"])
	require.True(t, expires.Equal(requireRFC3339(t, k["expires_at"])))
	require.Equal(t, false, u["has_usage"])
	require.Equal(t, num("0"), u["in_flight"])
	require.Nil(t, u["last_activity_at"])
	requireRFC3339(t, u["created_at"])

	// The key works at the gateway.
	res, err := e.Engine.Charge(e.ctx, key, 5*metering.Micro, "GET /test")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)

	r = e.admin(t, "GET", "/users/teacher-smith", "").requireStatus(t, http.StatusOK)
	u = requireKeys(t, r.body, userKeys...)
	require.Equal(t, num("70"), u["allowance_remaining"])
	require.Equal(t, num("9970.5"), u["effective_credits"])
	require.NotContains(t, string(r.raw), key, "the key is shown only once")

	// An unassigned user with defaults.
	r = e.admin(t, "POST", "/users", `{"username":"solo","project":null}`).requireStatus(t, http.StatusCreated)
	u = requireKeys(t, r.body["user"], userKeys...)
	require.Nil(t, u["project"])
	require.Equal(t, num("0"), u["effective_credits"])
	require.Nil(t, u["key"].(map[string]any)["expires_at"])
	require.Equal(t, false, u["partner"])
	require.Nil(t, u["next_grant_at"], "no grant runs")

	e.admin(t, "POST", "/users", `{"username":"solo"}`).requireError(t, http.StatusConflict, "conflict", "")
	e.admin(t, "GET", "/users/nobody", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.do(t, "GET", base+"/users/solo", viewerSecret, "").requireStatus(t, http.StatusOK)

	// Bad input: 400 naming the field, nothing written.
	users, keys, audits := e.countRows(t, "users"), e.countRows(t, "api_keys"), e.countRows(t, "audit_log")
	for body, field := range map[string]string{
		`{}`:                                                       "username",
		`{"username":"Bad"}`:                                       "username",
		`{"username":"a b"}`:                                       "username",
		`{"username":"x","project":"nope"}`:                        "project",
		`{"username":"x","project":""}`:                            "project",
		`{"username":"x","project":5}`:                             "project",
		`{"username":"x","initial_credits":-1}`:                    "initial_credits",
		`{"username":"x","initial_credits":0.1234567}`:             "initial_credits",
		`{"username":"x","purchased":-0.000001}`:                   "purchased",
		`{"username":"x","monthly_grant":true}`:                    "monthly_grant",
		`{"username":"x","partner":"yes"}`:                         "partner",
		`{"username":"x","key_expires_at":"tomorrow"}`:             "key_expires_at",
		`{"username":"x","key_expires_at":"2001-01-01T00:00:00Z"}`: "key_expires_at",
		`{"username":"x","api_key":"tg_x"}`:                        "api_key",
	} {
		e.admin(t, "POST", "/users", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	require.Equal(t, users, e.countRows(t, "users"))
	require.Equal(t, keys, e.countRows(t, "api_keys"))
	require.Equal(t, audits, e.countRows(t, "audit_log"))

	e.Drain(t)
	e.AssertConsistent(t)
}

func TestCredits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)

	r := e.admin(t, "POST", "/users/ann/credits", `{"delta":2.5,"note":"prize"}`).requireStatus(t, http.StatusOK)
	u := requireKeys(t, r.body, userKeys...)
	require.Equal(t, num("12.5"), u["awarded"])
	r = e.admin(t, "POST", "/users/ann/credits", `{"delta":3,"bucket":"purchased"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("3"), r.body["purchased"])
	require.Equal(t, num("15.5"), r.body["personal_credits"])
	require.Equal(t, num("15.5"), r.body["effective_credits"])

	// The change is visible to a later read.
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("12.5"), r.body["awarded"])
	require.Equal(t, num("3"), r.body["purchased"])

	// Below zero in either bucket: 409, nothing taken.
	e.admin(t, "POST", "/users/ann/credits", `{"delta":-12.500001}`).requireError(t, http.StatusConflict, "conflict", "")
	e.admin(t, "POST", "/users/ann/credits", `{"delta":-4,"bucket":"purchased"}`).requireError(t, http.StatusConflict, "conflict", "")
	r = e.admin(t, "POST", "/users/ann/credits", `{"delta":-12.5,"bucket":"awarded"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("0"), r.body["awarded"])
	require.Equal(t, num("3"), r.body["effective_credits"])

	e.admin(t, "POST", "/users", `{"username":"rich","purchased":9007199254.740991}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users/rich/credits", `{"delta":1,"bucket":"purchased"}`).requireError(t, http.StatusBadRequest, "invalid_argument", "delta")
	e.admin(t, "POST", "/users/rich/credits", `{"delta":1}`).requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/users/bob/credits", `{"delta":1}`).requireError(t, http.StatusNotFound, "not_found", "")
	for body, field := range map[string]string{
		`{}`:                             "delta",
		`{"delta":0}`:                    "delta",
		`{"delta":"1"}`:                  "delta",
		`{"delta":0.0000001}`:            "delta",
		`{"delta":1,"bucket":"pool"}`:    "bucket",
		`{"delta":1,"bucket":"Awarded"}`: "bucket",
		`{"delta":1,"buckets":"x"}`:      "buckets",
	} {
		e.admin(t, "POST", "/users/ann/credits", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("3"), r.body["effective_credits"])

	var actor, note string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT actor, details->>'note' FROM audit_log
		WHERE action = 'user.credits' ORDER BY id LIMIT 1 OFFSET 1`).Scan(&actor, &note))
	require.Equal(t, "ops", actor)
	require.Equal(t, "prize", note)

	e.Drain(t)
	e.AssertConsistent(t)
}

func TestListUsersPagination(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 120 {
		_, _, err := e.Engine.CreateUser(e.ctx, "test", metering.UserSpec{Username: "user-" + string(rune('a'+i/26)) + string(rune('a'+i%26))})
		require.NoError(t, err)
	}

	seen := map[string]bool{}
	var sizes []int
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 5, "pagination does not end")
		path := "/users?limit=50"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.do(t, "GET", base+path, viewerSecret, "").requireStatus(t, http.StatusOK)
		users := r.body["users"].([]any)
		sizes = append(sizes, len(users))
		prev := ""
		for _, u := range users {
			name := requireKeys(t, u, userKeys...)["username"].(string)
			require.False(t, seen[name], "duplicate %s", name)
			require.Greater(t, name, prev, "sorted by username")
			seen[name], prev = true, name
		}
		next, ok := r.body["next_cursor"]
		if !ok {
			requireKeys(t, r.body, "users")
			break
		}
		requireKeys(t, r.body, "users", "next_cursor")
		cursor = next.(string)
		require.NotEmpty(t, cursor)
	}
	require.Equal(t, []int{50, 50, 20}, sizes)
	require.Len(t, seen, 120)

	// Default limit 50; 1000 allowed.
	r := e.admin(t, "GET", "/users", "").requireStatus(t, http.StatusOK)
	require.Len(t, r.body["users"], 50)
	r = e.admin(t, "GET", "/users?limit=1000", "").requireStatus(t, http.StatusOK)
	require.Len(t, r.body["users"], 120)
	require.NotContains(t, r.body, "next_cursor")

	for _, q := range []string{"limit=0", "limit=1001", "limit=-1", "limit=ten", "limit="} {
		e.admin(t, "GET", "/users?"+q, "").requireError(t, http.StatusBadRequest, "invalid_argument", "limit")
	}
	for _, q := range []string{"cursor=!!!", "cursor=QUJD"} { // "ABC" is not a username
		e.admin(t, "GET", "/users?"+q, "").requireError(t, http.StatusBadRequest, "invalid_argument", "cursor")
	}
	e.admin(t, "GET", "/users?search=a%20b", "").requireError(t, http.StatusBadRequest, "invalid_argument", "search")

	// An empty world lists [] rather than null.
	e2 := setup(t)
	r = e2.admin(t, "GET", "/users", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []any{}, r.body["users"])
	r = e2.admin(t, "GET", "/projects", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []any{}, r.body["projects"])
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	oldKey := r.body["api_key"].(string)
	charge := func(key string) metering.ChargeStatus {
		res, err := e.Engine.Charge(e.ctx, key, metering.Micro, "GET /test")
		require.NoError(t, err)
		return res.Status
	}
	require.Equal(t, metering.Charged, charge(oldKey))

	e.do(t, "POST", base+"/users/ann/key/rotate", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	require.Equal(t, metering.Charged, charge(oldKey))

	r = e.admin(t, "POST", "/users/ann/key/rotate", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	requireKeys(t, r.body, "api_key")
	newKey := r.body["api_key"].(string)
	require.True(t, metering.WellFormedKey(newKey))
	require.NotEqual(t, oldKey, newKey)

	require.Equal(t, metering.KeyRefused, charge(oldKey))
	require.Equal(t, metering.Charged, charge(newKey))

	e.Drain(t) // last_activity_at (and so has_usage) comes from the ledger
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	k := r.body["key"].(map[string]any)
	require.Equal(t, newKey[:7], k["prefix"])
	require.Equal(t, num("7"), r.body["awarded"], "balances survive a rotation")
	require.Equal(t, true, r.body["has_usage"])
	requireRFC3339(t, r.body["last_activity_at"])

	e.admin(t, "POST", "/users/nobody/key/rotate", "").requireError(t, http.StatusNotFound, "not_found", "")
	var audited int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE action = 'user.key.rotate' AND actor = 'ops'
		AND details::text NOT LIKE '%'||$1||'%'`, newKey).Scan(&audited))
	require.Equal(t, 1, audited, "rotation audited without the key")
}

func TestDeactivateActivate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.admin(t, "POST", "/users", `{"username":"ann","purchased":5}`).requireStatus(t, http.StatusCreated)
	key := r.body["api_key"].(string)
	charge := func() metering.ChargeStatus {
		res, err := e.Engine.Charge(e.ctx, key, metering.Micro, "GET /test")
		require.NoError(t, err)
		return res.Status
	}
	require.Equal(t, metering.Charged, charge())

	e.do(t, "POST", base+"/users/ann/deactivate", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	r = e.admin(t, "POST", "/users/ann/deactivate", "").requireStatus(t, http.StatusOK)
	u := requireKeys(t, r.body, userKeys...)
	require.Equal(t, "inactive", u["status"])
	require.Equal(t, num("4"), u["purchased"], "balances kept")
	require.Equal(t, metering.KeyRefused, charge())
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "inactive", r.body["status"])

	r = e.admin(t, "POST", "/users/ann/activate", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "active", requireKeys(t, r.body, userKeys...)["status"])
	require.Equal(t, metering.Charged, charge(), "the same key works again")

	e.admin(t, "POST", "/users/nobody/deactivate", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "POST", "/users/nobody/activate", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "GET", "/users/ann/deactivate", "").requireError(t, http.StatusMethodNotAllowed, "method_not_allowed", "")

	var actors []string
	rows, err := e.DB.Query(e.ctx, `SELECT actor FROM audit_log WHERE action IN ('user.deactivate', 'user.activate') ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var a string
		require.NoError(t, rows.Scan(&a))
		actors = append(actors, a)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"ops", "ops"}, actors)
	e.Drain(t)
	e.AssertConsistent(t)
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := setup(t)
	big := `{"username":"ann","note":"` + strings.Repeat("x", admin.DefaultMaxBodyBytes) + `"}`
	e.admin(t, "POST", "/users", big).requireError(t, http.StatusRequestEntityTooLarge, "too_large", "")
	e.admin(t, "POST", "/projects", `{"name":"p","x":"`+strings.Repeat("y", admin.DefaultMaxBodyBytes)+`"}`).
		requireError(t, http.StatusRequestEntityTooLarge, "too_large", "")
	require.Equal(t, 0, e.countRows(t, "users"))
	require.Equal(t, 0, e.countRows(t, "projects"))
	// Just under the limit is fine (and then an unknown field).
	e.admin(t, "POST", "/projects", `{"name":"p"}`+strings.Repeat(" ", admin.DefaultMaxBodyBytes-20)).requireStatus(t, http.StatusCreated)
}
