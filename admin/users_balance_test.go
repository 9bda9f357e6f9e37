package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestListUsersZeroBalance checks GET /users?balance=zero (and the export
// with it) against live effective credits: allowance refills and grants
// that are due, pools that are off, empty or at the user's limit, the
// other filters and sorts, paging at every page size, and the documented
// lag of the ledger in both directions.
func TestListUsersZeroBalance(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 5, 29, 10, 0, 0, 0, time.UTC))
	for _, body := range []string{
		`{"name":"daily","allowance":{"amount":5,"period":"daily"}}`,
		`{"name":"pooled","allowance":{"amount":0,"period":"daily"},"pool":{"enabled":true,"balance":10,"per_user_limit":4}}`,
		`{"name":"dry","pool":{"enabled":true,"balance":0}}`,
		`{"name":"cut","allowance":{"amount":5,"period":"daily","timezone":"Europe/Berlin"}}`,
	} {
		e.admin(t, "POST", "/projects", body).requireStatus(t, http.StatusCreated)
	}
	keys := map[string]string{}
	for name, body := range map[string]string{
		"broke":   `{"username":"broke"}`,
		"rich":    `{"username":"rich","initial_credits":10}`,
		"spent":   `{"username":"spent","initial_credits":3}`,
		"fresh":   `{"username":"fresh","project":"daily"}`,
		"used":    `{"username":"used","project":"daily"}`,
		"capped":  `{"username":"capped","project":"pooled"}`,
		"pooler":  `{"username":"pooler","project":"pooled"}`,
		"parched": `{"username":"parched","project":"dry"}`,
		"granted": `{"username":"granted","initial_credits":2,"monthly_grant":2,"partner":true}`,
		"sleeper": `{"username":"sleeper"}`,
		"trimmed": `{"username":"trimmed","project":"cut"}`,
	} {
		keys[name] = e.createUserKey(t, body)
	}
	e.admin(t, "POST", "/users/sleeper/deactivate", "").requireStatus(t, http.StatusOK)
	spend := func(name string, credits int64) {
		require.Equal(t, metering.Charged, e.charge(t, keys[name], credits).Status, name)
	}
	// A second apart, so sort=-activity has an order.
	for _, c := range []struct {
		name    string
		credits int64
	}{
		{"spent", 3},
		{"used", 5},   // the day's allowance
		{"capped", 4}, // the pool limit of the day
		{"granted", 2},
		{"trimmed", 3}, // 2 left today
	} {
		spend(c.name, c.credits)
		e.Clock.Advance(time.Second)
	}
	e.Drain(t)

	check := func(want ...string) {
		t.Helper()
		for _, q := range []string{"balance=zero", "balance=zero&sort=username", "balance=zero&sort=-credits"} {
			for _, limit := range []int{1, 2, 3, 1000} {
				require.Equal(t, want, e.listAll(t, q, limit), "%s (limit %d)", q, limit)
			}
		}
		r := e.admin(t, "GET", "/users?balance=zero&limit=1000", "").requireStatus(t, http.StatusOK)
		for _, u := range r.body["users"].([]any) {
			require.Equal(t, num("0"), u.(map[string]any)["effective_credits"], "%v", u)
		}
		_, recs := e.readExport(t, adminSecret, "?balance=zero")
		require.Equal(t, want, nilIfEmpty(names(recs)), "export")
	}
	// Friday 29 May: today's allowance and pool share are spent.
	check("broke", "capped", "granted", "parched", "sleeper", "spent", "used")
	for query, want := range map[string][]string{
		"balance=zero&status=inactive":     {"sleeper"},
		"balance=zero&status=active":       {"broke", "capped", "granted", "parched", "spent", "used"},
		"balance=zero&project=pooled":      {"capped"},
		"balance=zero&project=none":        {"broke", "granted", "sleeper", "spent"},
		"balance=zero&search=r":            {"broke", "granted", "parched", "sleeper"},
		"balance=zero&sort=-activity":      {"granted", "capped", "used", "spent", "broke", "parched", "sleeper"},
		"balance=zero&project=daily":       {"used"},
		"balance=zero&project=nonexistent": nil,
	} {
		for _, limit := range []int{1, 2, 1000} {
			require.Equal(t, want, e.listAll(t, query, limit), "%s (limit %d)", query, limit)
		}
	}

	// Saturday: used and capped get a new day's allowance and pool share;
	// trimmed's project now refills to 0 (Berlin's day has begun).
	e.admin(t, "PATCH", "/projects/cut", `{"allowance":{"amount":0}}`).requireStatus(t, http.StatusOK)
	e.Clock.Set(time.Date(2026, 5, 30, 0, 0, 0, 0, time.UTC))
	check("broke", "granted", "parched", "sleeper", "spent", "trimmed")
	// June: granted is a partner, and its first monthly grant is due on the 1st.
	e.Clock.Set(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))
	check("broke", "parched", "sleeper", "spent", "trimmed")

	// The ledger proposes, Redis decides. Credit Redis has and the ledger
	// does not have yet (a refund still in the event stream) makes a
	// candidate Redis refuses: it is not listed, and pages stay full.
	// Written here straight into Postgres, as a lagging ledger would be.
	for _, name := range []string{"rich", "fresh", "pooler"} {
		_, err := e.DB.Exec(e.ctx, `UPDATE users SET awarded = 0, purchased = 0, allowance_remaining = 0,
			allowance_period = 9000000000 WHERE username = $1`, name)
		require.NoError(t, err)
	}
	_, err := e.DB.Exec(e.ctx, `UPDATE projects SET pool_balance = 0 WHERE name = 'pooled'`)
	require.NoError(t, err)
	check("broke", "parched", "sleeper", "spent", "trimmed")

	// The other way: a user who spent the last credit a moment ago is
	// listed once the ledger has the charge.
	late := e.createUserKey(t, `{"username":"late","initial_credits":1}`)
	require.Equal(t, metering.Charged, e.charge(t, late, 1).Status)
	check("broke", "parched", "sleeper", "spent", "trimmed")
	e.Drain(t)
	check("broke", "late", "parched", "sleeper", "spent", "trimmed")

	// Bad values: 400 naming the field.
	for _, query := range []string{"balance=none", "balance=", "balance=zero&balance=zero", "balance=ZERO"} {
		e.admin(t, "GET", "/users?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", "balance")
		resp, raw := e.sendCSV(t, "GET", "/users/export?"+query, adminSecret, "")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", raw)
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
