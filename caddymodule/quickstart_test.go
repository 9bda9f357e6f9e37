package caddymodule_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// Defect 7: the quick-start Caddyfile (the repository's own, adapted as
// `make run` does) prices /v1/responses by model like chat, charges the
// flat reads their credit, and refuses with a JSON error every endpoint
// that cannot be metered per request, and every path it does not list.
func TestQuickStartCaddyfile(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	putTestPrices(t, b, "m")
	up := newFakeOpenAI(t)
	listen := freePort(t)
	_, port, err := net.SplitHostPort(listen)
	require.NoError(t, err)
	// As `make run` sets them: the port, and this machine only.
	t.Setenv("TOLLGATE_LISTEN", ":"+port)
	t.Setenv("TOLLGATE_BIND", "127.0.0.1")
	t.Setenv("TOLLGATE_UPSTREAM", up.Listener.Addr().String())
	t.Setenv("TOLLGATE_REDIS_URL", meteringtest.RedisURL())
	t.Setenv("TOLLGATE_DATABASE_URL", dbURLWithSchema(t, b.Schema))
	t.Setenv("TOLLGATE_REDIS_PREFIX", b.Prefix)
	t.Setenv("TOLLGATE_KEY_PEPPER", "test-pepper")
	t.Setenv("TOLLGATE_ADMIN_TOKEN", "admin-secret")
	src, err := os.ReadFile("../Caddyfile")
	require.NoError(t, err)
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	require.Empty(t, warn)
	// This process runs other tests' gateways: no admin endpoint on :2019.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(cfg, &doc))
	doc["admin"] = map[string]any{"disabled": true}
	cfg, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, caddy.Load(cfg, true))
	t.Cleanup(func() { caddy.Stop() })

	start := 10 * metering.Micro
	w := &meteredWorld{b: b, up: up, base: "http://" + listen, http: &http.Client{}}
	key := w.user(t, "ann", start)
	spent := metering.Credits(0)

	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/batches"},
		{"GET", "/v1/batches/batch_1"},
		{"POST", "/v1/files"},
		{"POST", "/v1/fine_tuning/jobs"},
		{"POST", "/v1/assistants"},
		{"POST", "/v1/threads/runs"},
		{"GET", "/v1/realtime"},
		{"POST", "/v1/realtime/sessions"},
		{"POST", "/v1/uploads"},
		{"POST", "/v1/vector_stores"},
		{"GET", "/v1/responses/resp_1"},
		{"POST", "/v1/something/new"},
		{"GET", "/"},
	} {
		req, err := http.NewRequest(c.method, w.base+c.path, strings.NewReader(`{"model":"m"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		if c.path == "/v1/realtime" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
		}
		resp, err := w.http.Do(req)
		require.NoError(t, err)
		var e apiError
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e), c.path)
		resp.Body.Close()
		require.Equal(t, 403, resp.StatusCode, c.path)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), c.path)
		require.Equal(t, "endpoint_not_available", e.Error.Code, c.path)
	}
	require.Zero(t, up.count(), "nothing refused reached the upstream")
	require.Equal(t, start, w.settled(t, "ann"), "refused is not charged")

	// /v1/responses: priced by model, settled from the usage, its output
	// limit sent upstream.
	status, e := w.postJSON(t, "/v1/responses", key, `{"model":"m","input":"hello"}`)
	require.Equal(t, 200, status, "%+v", e)
	spent += costOf(fakePrompt, fakeCompletion)
	require.Equal(t, start-spent, w.settled(t, "ann"))
	var sent map[string]any
	require.NoError(t, json.Unmarshal(up.last(t).body, &sent))
	require.EqualValues(t, 4096, sent["max_output_tokens"])
	status, e = w.postJSON(t, "/v1/responses", key, `{"model":"no-price","input":"hello"}`)
	require.Equal(t, 400, status)
	require.Equal(t, "unknown_model", e.Error.Code)

	status, _ = w.postJSON(t, "/v1/chat/completions", key, `{"model":"m","max_tokens":5,"messages":[]}`)
	require.Equal(t, 200, status)
	spent += costOf(fakePrompt, fakeCompletion)

	status, _ = w.send(t, "GET", "/v1/models", key, "", nil)
	require.Equal(t, 200, status)
	spent += metering.Micro
	require.Equal(t, start-spent, w.settled(t, "ann"))

	status, _ = w.send(t, "GET", "/admin/v1/users/ann", "admin-secret", "", nil)
	require.Equal(t, 200, status, "the admin API is mounted")

	// Item 10: /admin/v1 without the slash is the admin API's, not the
	// catch-all route's: 401 asking for an admin token, then its 404.
	for _, path := range []string{"/admin/v1", "/admin/v1/"} {
		status, e = w.send(t, "GET", path, "", "", nil)
		require.Equal(t, 401, status, path)
		require.Equal(t, "unauthenticated", e.Error.Code, path)
		status, e = w.send(t, "GET", path, "admin-secret", "", nil)
		require.Equal(t, 404, status, path)
		require.Equal(t, "not_found", e.Error.Code, path)
	}

	// Item 10: TOLLGATE_BIND=127.0.0.1 listens on that address only: the
	// rest of the loopback range (as any other interface) is refused.
	_, err = net.Dial("tcp", "127.0.0.2:"+port)
	require.Error(t, err, "the gateway listens on 127.0.0.1 only")
}
