package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestExportImportRoundTrip: a users export imports back, as it is, into
// an empty instance whose projects an admin has recreated (an import does
// not create projects), and gives the same users: projects, awarded and
// purchased balances, monthly grants (no month paid twice or skipped),
// partner flags, deactivated users and key expiries, with new keys.
func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)
	src := setupAt(t, start)
	src.admin(t, "POST", "/projects", `{"name":"teachers","allowance":{"amount":5,"period":"daily","timezone":"Europe/Berlin"},
		"pool":{"enabled":true,"balance":100,"per_user_limit":40}}`).requireStatus(t, http.StatusCreated)
	src.admin(t, "POST", "/projects", `{"name":"kids","allowance":{"amount":1,"period":"weekly"}}`).requireStatus(t, http.StatusCreated)
	keys := map[string]string{}
	for name, body := range map[string]string{
		"ann": `{"username":"ann","project":"teachers","initial_credits":50,"purchased":5,"monthly_grant":10,"partner":true}`,
		"bob": `{"username":"bob","project":"kids","initial_credits":1.5}`,
		"cid": `{"username":"cid","purchased":7.000001,"key_expires_at":"2027-01-01T00:00:00.5Z"}`,
		"dan": `{"username":"dan"}`,
	} {
		keys[name] = src.createUserKey(t, body)
	}
	src.admin(t, "POST", "/users/bob/deactivate", "").requireStatus(t, http.StatusOK)
	// ann spends her allowance, some pool and some awarded credits. She is
	// a partner: her first grant is on December 1st, not at creation.
	res, err := src.Engine.Charge(src.ctx, keys["ann"], 60*metering.Micro, "POST /v1/x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	src.Drain(t)

	_, exported := src.readExport(t, adminSecret, "")
	require.Len(t, exported, 4)
	resp, raw := src.sendCSV(t, "GET", "/users/export", adminSecret, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	file := string(raw) // the export's bytes, as downloaded

	// An empty instance, later the same month; the admin recreates the
	// projects from GET /projects.
	dst := setupAt(t, start.Add(5*24*time.Hour))
	src.Clock.Set(dst.Clock.Now())
	projects := src.admin(t, "GET", "/projects", "").requireStatus(t, http.StatusOK).body["projects"].([]any)
	for _, p := range projects {
		p := p.(map[string]any)
		pool := p["pool"].(map[string]any)
		body, err := json.Marshal(map[string]any{"name": p["name"], "allowance": p["allowance"],
			"pool": map[string]any{"enabled": pool["enabled"], "balance": pool["balance"], "per_user_limit": pool["per_user_limit"]}})
		require.NoError(t, err)
		dst.admin(t, "POST", "/projects", string(body)).requireStatus(t, http.StatusCreated)
	}

	preview := dst.importCSV(t, "?dry_run=true", file, http.StatusOK)
	require.Equal(t, []string{"allowance_remaining", "created_at", "effective_credits", "key_created_at", "key_status",
		"last_activity_at", "personal_credits", "pool_available"}, preview.IgnoredColumns)
	require.Equal(t, 4, preview.Totals.Users)
	for _, r := range preview.Rows {
		require.Equal(t, "ok", r.Status, "%s: %s", r.Username, r.Error)
		require.Equal(t, "2026-11", *r.GrantsPaidThrough, r.Username)
	}
	ann := preview.Rows[0]
	require.Equal(t, "ann", ann.Username)
	require.Equal(t, "teachers", *ann.Project)
	require.Equal(t, json.Number("5"), *ann.Purchased, "5 purchased; no grant before December 1st")
	require.Equal(t, "inactive", preview.Rows[1].UserStatus)

	created := dst.importCSV(t, "", file, http.StatusOK)
	require.Equal(t, 4, created.Created)
	newKeys := map[string]string{}
	for _, r := range created.Rows {
		newKeys[r.Username] = r.APIKey
	}

	// The same users, field by field, but for their keys (new ones) and
	// what follows from usage.
	same := func(when string) {
		t.Helper()
		for _, name := range []string{"ann", "bob", "cid", "dan"} {
			a := src.admin(t, "GET", "/users/"+name, "").requireStatus(t, http.StatusOK).body
			b := dst.admin(t, "GET", "/users/"+name, "").requireStatus(t, http.StatusOK).body
			for _, field := range []string{"project", "status", "awarded", "purchased", "personal_credits", "monthly_grant", "partner"} {
				require.Equal(t, a[field], b[field], "%s: %s.%s", when, name, field)
			}
			ka, kb := a["key"].(map[string]any), b["key"].(map[string]any)
			require.Equal(t, ka["expires_at"], kb["expires_at"], "%s: %s's key expiry", when, name)
			require.Equal(t, ka["status"], kb["status"], "%s: %s's key status", when, name)
			require.NotEqual(t, ka["prefix"], kb["prefix"], "%s has a new key", name)
		}
	}
	same("after the import")
	require.Equal(t, "2027-01-01T00:00:00.5Z", dst.admin(t, "GET", "/users/cid", "").body["key"].(map[string]any)["expires_at"])

	// The new keys work as the old ones did; a request pays no grant in
	// November on either instance.
	for name, want := range map[string]metering.ChargeStatus{"ann": metering.Charged, "bob": metering.KeyRefused,
		"cid": metering.Charged, "dan": metering.Insufficient} {
		for _, e := range []*env{src, dst} {
			key := keys[name]
			if e == dst {
				key = newKeys[name]
			}
			res, err := e.Engine.Charge(e.ctx, key, metering.Micro/2, "POST /v1/x")
			require.NoError(t, err)
			require.Equal(t, want, res.Status, name)
		}
	}
	same("after a request each")

	// December's grant is paid once on both.
	for _, e := range []*env{src, dst} {
		e.Clock.Set(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	}
	same("in December")
	dec := dst.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK).body
	require.Equal(t, num("15"), dec["purchased"], "5 and December's 10 (the half credit came from the allowance)")

	// And the round trip of the round trip gives the same export, but for
	// the columns that follow from usage, time and keys.
	src.Drain(t)
	dst.Drain(t)
	_, again := dst.readExport(t, adminSecret, "")
	_, before := src.readExport(t, adminSecret, "")
	for i := range before {
		for _, col := range []int{0, 1, 2, 4, 6, 7, 10, 11, 13, 15, 16} {
			require.Equal(t, before[i][col], again[i][col], "row %d column %d", i, col)
		}
	}
	dst.AssertConsistent(t)

	// Grants cannot have been paid ahead of the current month.
	a := dst.importCSV(t, "?dry_run=true", "username,project,initial_credits,monthly_grant,grants_paid_through\neve,,1,5,2027-01\n",
		http.StatusOK)
	require.Equal(t, "The grants_paid_through 2027-01 is after the current month, 2026-12; grants cannot have been paid ahead.",
		a.Rows[0].Error)
}
