package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Defect 5: a client cannot pass X-Tollgate-* headers off as the
// gateway's, on any route: every one it sends is removed (in any case,
// with "_" for "-") before the gateway sets its own.
func TestClientTollgateHeadersAreDropped(t *testing.T) {
	w := setupChecks(t)
	key := w.user(t, "ann", 10*metering.Micro)
	forged := map[string]string{
		"X-Tollgate-Reservation": "forged-reservation",
		"X-Tollgate-User":        "forged-user",
		"X-Tollgate-Project":     "forged-project",
		"X-TOLLGATE-EXTRA":       "forged-extra",
		"x-tollgate_underscore":  "forged-underscore",
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/fixed", ""},
		{"POST", "/v1/chat/completions", `{"model":"m","max_tokens":5,"messages":[]}`},
	} {
		req, err := http.NewRequest(c.method, w.base+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range forged {
			req.Header[k] = []string{v} // as written, not canonicalised
		}
		resp, err := w.http.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, c.path)

		got := w.up.last(t).header
		for name, vals := range got {
			for _, v := range vals {
				require.NotContains(t, v, "forged", "%s reached the upstream as %s: %s", c.path, name, v)
			}
		}
		require.Equal(t, "ann", got.Get("X-Tollgate-User"), c.path)
		if c.method == "GET" {
			require.Empty(t, got.Get("X-Tollgate-Reservation"), "a fixed-cost route has no reservation")
		} else {
			require.NotEmpty(t, got.Get("X-Tollgate-Reservation"))
		}
	}
}
