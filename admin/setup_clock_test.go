package admin_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// setupAt is setup with an injectable clock, for reports and periods.
func setupAt(t *testing.T, now time.Time) *env {
	t.Helper()
	opts := meteringtest.Options{}
	if !now.IsZero() {
		opts.Clock = meteringtest.NewClock(now)
	}
	return setupWith(t, opts)
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
