package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

func (e *env) charge(t *testing.T, key string, credits int64) metering.ChargeResult {
	t.Helper()
	res, err := e.Engine.Charge(e.ctx, key, metering.Credits(credits)*metering.Micro, "GET /test")
	require.NoError(t, err)
	return res
}

func (e *env) auditCount(t *testing.T, action string) int {
	t.Helper()
	var n int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE action = $1 AND actor = 'ops'`, action).Scan(&n))
	return n
}

func TestRevealKey(t *testing.T) {
	t.Parallel()
	plain := setup(t)
	plain.admin(t, "POST", "/users", `{"username":"ann"}`).requireStatus(t, http.StatusCreated)
	plain.admin(t, "GET", "/users/ann/key", "").requireError(t, http.StatusConflict, "reveal_disabled", "")
	require.Zero(t, plain.auditCount(t, "user.key.reveal"))

	e := setupWith(t, meteringtest.Options{KeyEncryptionKey: []byte("0123456789abcdef0123456789abcdef")})
	r := e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":5}`).requireStatus(t, http.StatusCreated)
	key := r.body["api_key"].(string)

	r = e.admin(t, "GET", "/users/ann/key", "").requireStatus(t, http.StatusOK)
	requireKeys(t, r.body, "api_key")
	require.Equal(t, key, r.body["api_key"])
	e.do(t, "GET", base+"/users/ann/key", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	e.admin(t, "GET", "/users/nobody/key", "").requireError(t, http.StatusNotFound, "not_found", "")

	r = e.admin(t, "POST", "/users/ann/key/rotate", "").requireStatus(t, http.StatusOK)
	rotated := r.body["api_key"].(string)
	r = e.admin(t, "GET", "/users/ann/key", "").requireStatus(t, http.StatusOK)
	require.Equal(t, rotated, r.body["api_key"], "reveal shows the live key")
	require.Equal(t, metering.Charged, e.charge(t, rotated, 1).Status)

	require.Equal(t, 2, e.auditCount(t, "user.key.reveal"))
	require.Equal(t, 1, e.auditCount(t, "user.key.rotate"))
	// No key value in any audit entry: neither the full key nor anything
	// longer than its display prefix.
	rows, err := e.DB.Query(e.ctx, `SELECT action, coalesce(target, ''), details::text FROM audit_log`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var action, target, details string
		require.NoError(t, rows.Scan(&action, &target, &details))
		for _, k := range []string{key, rotated} {
			require.NotContains(t, details, k, action)
			require.NotContains(t, details, k[:12], action)
			require.NotContains(t, target, k[:12], action)
		}
	}
	require.NoError(t, rows.Err())
}

func TestPatchUserProject(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)) // one period of a throughout
	e.admin(t, "POST", "/projects", `{"name":"a","allowance":{"amount":100,"period":"daily"},
		"pool":{"enabled":true,"balance":1000}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects", `{"name":"b","allowance":{"amount":30,"period":"monthly"},
		"pool":{"enabled":true,"balance":500,"per_user_limit":20}}`).requireStatus(t, http.StatusCreated)
	r := e.admin(t, "POST", "/users", `{"username":"ann","project":"a","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	key := r.body["api_key"].(string)
	require.Equal(t, metering.Charged, e.charge(t, key, 150).Status) // 100 allowance + 50 pool
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("0"), r.body["allowance_remaining"])
	require.Equal(t, num("950"), r.body["pool_available"])

	// Moving to b: b's full allowance and pool access, from the next request.
	r = e.admin(t, "PATCH", "/users/ann", `{"project":"b"}`).requireStatus(t, http.StatusOK)
	u := requireKeys(t, r.body, userKeys...)
	require.Equal(t, "b", u["project"])
	require.Equal(t, num("30"), u["allowance_remaining"])
	require.Equal(t, num("20"), u["pool_available"])
	require.Equal(t, num("60"), u["effective_credits"])
	res := e.charge(t, key, 45)
	require.Equal(t, metering.Charged, res.Status)
	require.Equal(t, "b", res.Project)
	require.Equal(t, metering.Split{Allowance: 30 * metering.Micro, Pool: 15 * metering.Micro}, res.Taken)

	// Unassigned: personal credits only.
	r = e.admin(t, "PATCH", "/users/ann", `{"project":null}`).requireStatus(t, http.StatusOK)
	u = requireKeys(t, r.body, userKeys...)
	require.Nil(t, u["project"])
	require.Equal(t, num("0"), u["allowance_remaining"])
	require.Equal(t, num("0"), u["pool_available"])
	require.Equal(t, num("10"), u["effective_credits"])
	res = e.charge(t, key, 1)
	require.Equal(t, "", res.Project)
	require.Equal(t, metering.Split{Awarded: metering.Micro}, res.Taken)

	// Back to a within the same period: ann resumes what she left there
	// (the allowance spent, 50 drawn from the pool), not a second allowance.
	r = e.admin(t, "PATCH", "/users/ann", `{"project":"a"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("0"), r.body["allowance_remaining"], "no second allowance in the same period")
	require.Equal(t, num("950"), r.body["pool_available"])
	require.Equal(t, metering.Split{Pool: 100 * metering.Micro}, e.charge(t, key, 100).Taken)

	require.Equal(t, 3, e.auditCount(t, "user.update"))
	var from, to string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT details->'project'->>'from', details->'project'->>'to'
		FROM audit_log WHERE action = 'user.update' ORDER BY id LIMIT 1`).Scan(&from, &to))
	require.Equal(t, []string{"a", "b"}, []string{from, to})
	var configEvents int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM events WHERE kind = 'config' AND actor = 'ops'`).Scan(&configEvents))
	require.Equal(t, 3, configEvents, "each reassignment is in the ledger before PATCH answers")

	e.Drain(t)
	e.AssertConsistent(t)
}

func TestPatchUserFields(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"a"}`).requireStatus(t, http.StatusCreated)
	r := e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	annKey := r.body["api_key"].(string)
	r = e.admin(t, "POST", "/users", `{"username":"bob","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	bobKey := r.body["api_key"].(string)

	// Bad input: 400 naming the field, nothing written.
	audits, events := e.countRows(t, "audit_log"), e.countRows(t, "events")
	for body, field := range map[string]string{
		`{"username":"Bad Name"}`:                   "username",
		`{"username":""}`:                           "username",
		`{"username":null}`:                         "username",
		`{"project":"nope"}`:                        "project",
		`{"project":""}`:                            "project",
		`{"project":7}`:                             "project",
		`{"monthly_grant":-1}`:                      "monthly_grant",
		`{"monthly_grant":null}`:                    "monthly_grant",
		`{"monthly_grant":1.0000001}`:               "monthly_grant",
		`{"partner":"yes"}`:                         "partner",
		`{"partner":null}`:                          "partner",
		`{"key_expires_at":"tomorrow"}`:             "key_expires_at",
		`{"key_expires_at":"2001-01-01T00:00:00Z"}`: "key_expires_at",
		`{"key_expires_at":5}`:                      "key_expires_at",
		`{"status":"inactive"}`:                     "status",
	} {
		e.admin(t, "PATCH", "/users/bob", body).requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	require.Equal(t, audits, e.countRows(t, "audit_log"))
	require.Equal(t, events, e.countRows(t, "events"))
	e.admin(t, "PATCH", "/users/nobody", `{"partner":true}`).requireError(t, http.StatusNotFound, "not_found", "")
	e.do(t, "PATCH", base+"/users/bob", viewerSecret, `{"partner":true}`).requireError(t, http.StatusForbidden, "forbidden", "")

	// Grant, partner and key expiry.
	expires := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	r = e.admin(t, "PATCH", "/users/bob", `{"monthly_grant":5,"partner":true,"key_expires_at":"`+expires.Format(time.RFC3339)+`"}`).
		requireStatus(t, http.StatusOK)
	u := requireKeys(t, r.body, userKeys...)
	require.Equal(t, num("5"), u["monthly_grant"])
	require.Equal(t, true, u["partner"])
	require.True(t, expires.Equal(requireRFC3339(t, u["key"].(map[string]any)["expires_at"])))
	require.Equal(t, num("0"), u["purchased"], "the grant starts on the next 1st")
	require.NotNil(t, u["next_grant_at"])
	require.Equal(t, metering.Charged, e.charge(t, bobKey, 1).Status, "the key still works")
	r = e.admin(t, "PATCH", "/users/bob", `{"key_expires_at":null}`).requireStatus(t, http.StatusOK)
	require.Nil(t, r.body["key"].(map[string]any)["expires_at"])

	// Renames: allowed without usage history; refused with it, reconciled or not.
	r = e.admin(t, "PATCH", "/users/ann", `{"username":"anna"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, "anna", r.body["username"])
	e.admin(t, "GET", "/users/ann", "").requireError(t, http.StatusNotFound, "not_found", "")
	res := e.charge(t, annKey, 1)
	require.Equal(t, metering.Charged, res.Status)
	require.Equal(t, "anna", res.Username, "the key follows the user")
	e.admin(t, "PATCH", "/users/anna", `{"username":"ann"}`).requireError(t, http.StatusConflict, "conflict", "")
	e.admin(t, "PATCH", "/users/bob", `{"username":"bobby"}`).requireError(t, http.StatusConflict, "conflict", "")
	e.Drain(t)
	e.admin(t, "PATCH", "/users/anna", `{"username":"ann"}`).requireError(t, http.StatusConflict, "conflict", "")
	e.admin(t, "POST", "/users", `{"username":"carl"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "PATCH", "/users/carl", `{"username":"anna"}`).requireError(t, http.StatusConflict, "conflict", "")
	var usageNames []string
	rows, err := e.DB.Query(e.ctx, `SELECT DISTINCT username FROM events WHERE kind = 'usage' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		usageNames = append(usageNames, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"anna", "bob"}, usageNames)

	// A no-op patch changes nothing and records nothing.
	audits = e.auditCount(t, "user.update")
	e.admin(t, "PATCH", "/users/bob", `{"partner":true}`).requireStatus(t, http.StatusOK)
	require.Equal(t, audits, e.auditCount(t, "user.update"))
	require.Equal(t, 3, audits)

	e.Drain(t)
	e.AssertConsistent(t)
}

func TestExpiredKeyFailsLikeInvalid(t *testing.T) {
	t.Parallel()
	clock := meteringtest.NewClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	e := setupWith(t, meteringtest.Options{Clock: clock})
	r := e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10,"key_expires_at":"2026-03-10T13:00:00Z"}`).
		requireStatus(t, http.StatusCreated)
	key := r.body["api_key"].(string)
	require.Equal(t, metering.Charged, e.charge(t, key, 1).Status)
	clock.Set(time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC))
	res := e.charge(t, key, 1)
	unknown, err := metering.NewAPIKey()
	require.NoError(t, err)
	require.Equal(t, e.charge(t, unknown, 1), res, "an expired key is refused exactly like an unknown one")
	require.Equal(t, metering.KeyRefused, res.Status)

	// A later expiry brings it back.
	e.admin(t, "PATCH", "/users/ann", `{"key_expires_at":"2026-03-11T00:00:00Z"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, metering.Charged, e.charge(t, key, 1).Status)
	e.Drain(t)
	e.AssertConsistent(t)
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	key := r.body["api_key"].(string)
	require.Equal(t, metering.Charged, e.charge(t, key, 2).Status)

	// A request in flight blocks the delete until it is released.
	res, err := e.Engine.ChargeTracked(e.ctx, key, metering.Micro, "POST /slow", time.Minute)
	require.NoError(t, err)
	require.True(t, res.Lease.Tracked())
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("1"), r.body["in_flight"])
	e.admin(t, "DELETE", "/users/ann", "").requireError(t, http.StatusConflict, "conflict", "")
	e.do(t, "DELETE", base+"/users/ann", viewerSecret, "").requireError(t, http.StatusForbidden, "forbidden", "")
	require.Equal(t, metering.Charged, e.charge(t, key, 1).Status, "a refused delete changes nothing")
	e.Engine.Release(res.Lease)
	require.Eventually(t, func() bool {
		r := e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
		return r.body["in_flight"] == num("0")
	}, 10*time.Second, 5*time.Millisecond)

	r = e.admin(t, "DELETE", "/users/ann", "").requireStatus(t, http.StatusNoContent)
	require.Empty(t, r.raw)
	e.admin(t, "GET", "/users/ann", "").requireError(t, http.StatusNotFound, "not_found", "")
	e.admin(t, "DELETE", "/users/ann", "").requireError(t, http.StatusNotFound, "not_found", "")
	require.Equal(t, metering.KeyRefused, e.charge(t, key, 1).Status)
	other, err := e.Bundle.NewEngine(t).Charge(e.ctx, key, 1, "GET /other-gateway")
	require.NoError(t, err)
	require.Equal(t, metering.KeyRefused, other.Status)
	require.Equal(t, 0, e.countRows(t, "users"))
	require.Equal(t, 0, e.countRows(t, "api_keys"))
	n, err := e.Redis.HLen(e.ctx, e.Engine.Keys().KeyIndex()).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the key index entry is gone")
	require.Equal(t, 1, e.auditCount(t, "user.delete"))

	// Usage history outlives the user.
	e.Drain(t)
	var usage int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM events WHERE kind = 'usage' AND username = 'ann'`).Scan(&usage))
	require.Equal(t, 3, usage)

	// The name is free again, for a new user with a new key.
	r = e.admin(t, "POST", "/users", `{"username":"ann","initial_credits":1}`).requireStatus(t, http.StatusCreated)
	require.Equal(t, num("1"), r.body["user"].(map[string]any)["effective_credits"])
	require.Equal(t, metering.KeyRefused, e.charge(t, key, 1).Status, "the old key stays dead")
	require.True(t, strings.HasPrefix(r.body["api_key"].(string), "tg_"))
	e.Drain(t)
	e.AssertConsistent(t)
}

// Changing a monthly grant pays what is due at the old amount first, and a
// grant switched on pays from the next 1st, not for the months when there
// was none.
func TestPatchMonthlyGrant(t *testing.T) {
	t.Parallel()
	clock := meteringtest.NewClock(time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC))
	e := setupWith(t, meteringtest.Options{Clock: clock})
	e.admin(t, "POST", "/users", `{"username":"ann","monthly_grant":10,"partner":true}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"bob","partner":true}`).requireStatus(t, http.StatusCreated)

	clock.Set(time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)) // neither seen since January
	r := e.admin(t, "PATCH", "/users/ann", `{"monthly_grant":20}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("20"), r.body["purchased"], "February and March at the old 10")
	r = e.admin(t, "PATCH", "/users/bob", `{"monthly_grant":5}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("0"), r.body["purchased"], "nothing yet: no grant ran before")
	var grants int
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*) FROM events WHERE kind = 'grant' AND username = 'ann'`).Scan(&grants))
	require.Equal(t, 1, grants, "the grant paid at the old amount is in the ledger before PATCH answers")

	clock.Set(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	r = e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("40"), r.body["purchased"], "April at the new 20")
	r = e.admin(t, "GET", "/users/bob", "").requireStatus(t, http.StatusOK)
	require.Equal(t, num("5"), r.body["purchased"])
	e.Drain(t)
	e.AssertConsistent(t)
}
