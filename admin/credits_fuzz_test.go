package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// FuzzCreditsBody sends arbitrary bodies to POST /users/{username}/credits,
// each to a fresh user holding 100 awarded credits. The API never panics
// (a 5xx would show it) and never writes half: either it answers 200 and
// the user's personal credits moved by exactly the body's delta, or it
// answers an error and nothing changed, not even the audit log.
func FuzzCreditsBody(f *testing.F) {
	for _, body := range []string{`{"delta": 5}`, `{"delta": -200}`, `{"delta": -100, "bucket": "awarded"}`,
		`{"delta": 2.5, "bucket": "purchased", "note": "gift"}`, `{"delta": 1.0000001}`, `{"delta": "5"}`,
		`{"delta": 1e400}`, `{"delta": 9007199254.740991}`, `{"delta": 0}`, `{"delta": 5, "extra": 1}`,
		`{"delta": 5}{"delta": 5}`, `[]`, `null`, `{"delta": 5, "bucket": "allowance"}`, `{"delta":-1e-6}`} {
		f.Add(body)
	}
	e := setupWith(f, meteringtest.Options{})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body string) {
		name := fmt.Sprintf("fuzz-%d", n.Add(1))
		e.admin(t, "POST", "/users", `{"username":"`+name+`","initial_credits":100}`).requireStatus(t, http.StatusCreated)
		before := e.personal(t, name)
		audits := e.auditRowsFor(t, name)

		r := e.admin(t, "POST", "/users/"+name+"/credits", body)
		require.Less(t, r.status, 500, "body %q: %s", body, r.raw)
		after := e.personal(t, name)
		if r.status != http.StatusOK {
			require.Equal(t, before, after, "refused body %q changed the balance", body)
			require.Equal(t, audits, e.auditRowsFor(t, name), "refused body %q was audited", body)
			return
		}
		var req struct{ Delta json.Number }
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&req), "accepted body %q", body)
		delta, err := metering.ParseCredits(req.Delta.String())
		require.NoError(t, err, "accepted body %q", body)
		require.Equal(t, before+delta, after, "body %q", body)
		require.Equal(t, audits+1, e.auditRowsFor(t, name))
	})
}

// personal is the user's live awarded + purchased credits.
func (e *env) personal(t *testing.T, name string) metering.Credits {
	t.Helper()
	v, err := e.Engine.GetUser(e.ctx, name)
	require.NoError(t, err)
	return v.Live.Awarded + v.Live.Purchased
}

func (e *env) auditRowsFor(t *testing.T, name string) int {
	t.Helper()
	var c int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE target = $1`, name).Scan(&c))
	return c
}
