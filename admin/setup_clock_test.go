package admin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// secondAdminSecret is the token of a second admin, "alice", for actor filters.
const secondAdminSecret = "alice-secret-0123456789"

// setupAt is setup with an injectable clock, for reports and periods, and a
// second admin token.
func setupAt(t *testing.T, now time.Time) *env {
	t.Helper()
	opts := meteringtest.Options{}
	if !now.IsZero() {
		opts.Clock = meteringtest.NewClock(now)
	}
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

// raw sends a GET with the admin token and returns the status, content type
// and body as they are (for CSV answers).
func (e *env) raw(t *testing.T, path string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, "GET", e.srv.URL+base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// createUserKey creates a user through the API and returns its API key.
func (e *env) createUserKey(t *testing.T, body string) string {
	t.Helper()
	r := e.admin(t, "POST", "/users", body).requireStatus(t, http.StatusCreated)
	return r.body["api_key"].(string)
}
