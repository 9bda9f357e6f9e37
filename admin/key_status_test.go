package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestKeyStatusAndAge: key.status says what a gateway does with the key
// now (the reported bug: an expired key showed only the user's "active"),
// the listing and the export filter by it and by the key's age, so an
// admin finds the keys past the 90-day rotation, and the status agrees
// with the gateway to the millisecond of expiry.
func TestKeyStatusAndAge(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	keys := map[string]string{"old": e.createUserKey(t, `{"username":"old","initial_credits":10}`)}
	e.Clock.Set(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	expiry := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	for name, body := range map[string]string{
		"ann": `{"username":"ann","initial_credits":10}`,
		"bob": `{"username":"bob","initial_credits":10,"key_expires_at":"2026-03-05T00:00:00Z"}`,
		"cid": `{"username":"cid","initial_credits":10}`,
	} {
		keys[name] = e.createUserKey(t, body)
	}
	e.admin(t, "POST", "/users/cid/deactivate", "").requireStatus(t, http.StatusOK)
	gateway := func(name string) metering.ChargeStatus {
		res, err := e.Engine.Charge(e.ctx, keys[name], metering.Micro/1000, "GET /x")
		require.NoError(t, err)
		return res.Status
	}
	keyOf := func(name string) map[string]any {
		r := e.admin(t, "GET", "/users/"+name, "").requireStatus(t, http.StatusOK)
		return requireKeys(t, r.body["key"], "prefix", "status", "created_at", "expires_at")
	}

	// To the millisecond: active just before the expiry, expired at it.
	e.Clock.Set(expiry.Add(-time.Millisecond))
	require.Equal(t, "active", keyOf("bob")["status"])
	require.Equal(t, metering.Charged, gateway("bob"))
	e.Clock.Set(expiry)
	require.Equal(t, "expired", keyOf("bob")["status"])
	require.Equal(t, metering.KeyRefused, gateway("bob"))

	e.Clock.Set(time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC)) // old's key is 99 days old, the others 40
	for name, want := range map[string]struct {
		status string
		charge metering.ChargeStatus
	}{
		"old": {"active", metering.Charged},
		"ann": {"active", metering.Charged},
		"bob": {"expired", metering.KeyRefused},
		"cid": {"revoked", metering.KeyRefused},
	} {
		k := keyOf(name)
		require.Equal(t, want.status, k["status"], name)
		require.Equal(t, want.charge, gateway(name), "%s: the gateway agrees with key.status", name)
	}
	r := e.admin(t, "GET", "/users/bob", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "active", r.body["status"], "the user's own status is unchanged")
	require.Equal(t, "2026-01-01T09:00:00Z", keyOf("old")["created_at"])

	for query, want := range map[string][]string{
		"key_status=active":                    {"ann", "old"},
		"key_status=expired":                   {"bob"},
		"key_status=revoked":                   {"cid"},
		"key_older_than=90d":                   {"old"},
		"key_older_than=98d":                   {"old"},
		"key_older_than=99d":                   nil, // exactly 99 days old is not older
		"key_older_than=30d":                   {"ann", "bob", "cid", "old"},
		"key_older_than=30d&key_status=active": {"ann", "old"},
		"key_status=active&status=inactive":    nil,
	} {
		require.Equal(t, want, e.listAll(t, query, 1), query)
	}

	// The export filters alike and carries the key's columns.
	_, recs := e.readExport(t, adminSecret, "?key_older_than=90d")
	require.Len(t, recs, 1)
	require.Equal(t, []string{"old", "active", "2026-01-01T09:00:00Z", ""}, []string{recs[0][0], recs[0][13], recs[0][14], recs[0][15]})
	_, recs = e.readExport(t, adminSecret, "?key_status=expired")
	require.Equal(t, []string{"bob", "expired", "2026-03-01T09:00:00Z", "2026-03-05T00:00:00Z"},
		[]string{recs[0][0], recs[0][13], recs[0][14], recs[0][15]})

	// Rotating makes a key young again; activating brings a key back.
	e.admin(t, "POST", "/users/old/key/rotate", "").requireStatus(t, http.StatusOK)
	require.Nil(t, e.listAll(t, "key_older_than=90d", 10))
	e.admin(t, "POST", "/users/cid/activate", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "active", keyOf("cid")["status"])

	for _, query := range []string{"key_status=gone", "key_status=", "key_status=Active"} {
		e.admin(t, "GET", "/users?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", "key_status")
	}
	for _, query := range []string{"key_older_than=90", "key_older_than=0d", "key_older_than=-1d", "key_older_than=90days",
		"key_older_than=1.5d", "key_older_than=", "key_older_than=36501d", "key_older_than=+9d", "key_older_than=09d"} {
		e.admin(t, "GET", "/users?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", "key_older_than")
	}
	code, _, body := e.raw(t, "/users/export?key_older_than=3m")
	require.Equal(t, http.StatusBadRequest, code, body)
}
