package admin_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// auditEntries returns the entries of an audit answer and its next cursor.
func auditEntries(t *testing.T, r *response) ([]map[string]any, string) {
	t.Helper()
	list, ok := r.body["entries"].([]any)
	require.True(t, ok, "entries in %s", r.raw)
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i] = requireKeys(t, v, "at", "actor", "action", "target", "details")
	}
	next, _ := r.body["next_cursor"].(string)
	return out, next
}

func summary(entries []map[string]any) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e["actor"].(string) + " " + e["action"].(string) + " " + e["target"].(string)
	}
	return out
}

func TestAudit(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Time{})
	start := time.Now().UTC()
	alice := func(method, path, body string) *response {
		return e.do(t, method, base+path, secondAdminSecret, body)
	}
	e.admin(t, "POST", "/projects", `{"name":"p"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"ann","project":"p","initial_credits":10}`).requireStatus(t, http.StatusCreated)
	alice("POST", "/users", `{"username":"bob"}`).requireStatus(t, http.StatusCreated)
	alice("POST", "/users/ann/credits", `{"delta":-2,"note":"typo fix"}`).requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/users/ann/deactivate", "").requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/users/ann/activate", "").requireStatus(t, http.StatusOK)
	rotated := e.admin(t, "POST", "/users/ann/key/rotate", "").requireStatus(t, http.StatusOK).body["api_key"].(string)
	e.admin(t, "POST", "/projects/p/pool", `{"delta":5,"note":"top up"}`).requireStatus(t, http.StatusOK)
	alice("POST", "/transfers", `{"from":"ann","to":"bob","amount":1,"note":"gift"}`).requireStatus(t, http.StatusOK)
	e.admin(t, "PATCH", "/projects/p", `{"pool":{"enabled":true}}`).requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/projects/p/settle", "").requireStatus(t, http.StatusOK)
	// Refused writes leave no entry.
	e.admin(t, "POST", "/transfers", `{"from":"bob","to":"ann","amount":100}`).requireStatus(t, http.StatusConflict)
	e.admin(t, "POST", "/users/ann/credits", `{"delta":1,"bucket":"x"}`).requireStatus(t, http.StatusBadRequest)

	all := []string{
		"ops project.settle p",
		"ops project.update p",
		"alice transfer.in bob",
		"alice transfer.out ann",
		"ops project.pool p",
		"ops user.key.rotate ann",
		"ops user.activate ann",
		"ops user.deactivate ann",
		"alice user.credits ann",
		"alice user.create bob",
		"ops user.credits ann",
		"ops user.create ann",
		"ops project.create p",
	}
	r := e.do(t, "GET", base+"/audit", viewerSecret, "").requireStatus(t, http.StatusOK)
	require.NotContains(t, string(r.raw), rotated, "a rotated key never appears in the audit")
	entries, next := auditEntries(t, r)
	require.Equal(t, all, summary(entries))
	require.Empty(t, next, "one page")
	require.NotContains(t, r.body, "next_cursor")
	for i, en := range entries {
		at := requireRFC3339(t, en["at"])
		require.False(t, at.Before(start.Add(-time.Second)))
		if i > 0 {
			require.False(t, at.After(requireRFC3339(t, entries[i-1]["at"])), "newest first")
		}
	}
	// Notes are recorded, in the audit and in the ledger event.
	require.Equal(t, "typo fix", entries[8]["details"].(map[string]any)["note"])
	require.Equal(t, num("-2"), entries[8]["details"].(map[string]any)["delta"])
	require.Equal(t, "initial credits", entries[10]["details"].(map[string]any)["note"])
	require.Equal(t, "top up", entries[4]["details"].(map[string]any)["note"])
	require.Equal(t, "gift", entries[2]["details"].(map[string]any)["note"])
	var actor, note string
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT actor, note FROM events WHERE kind = 'adjust' AND d_awarded < 0`).Scan(&actor, &note))
	require.Equal(t, "alice typo fix", actor+" "+note)
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT actor, note FROM events WHERE kind = 'pool' AND note = 'top up'`).Scan(&actor, &note))
	require.Equal(t, "ops", actor)

	// Filters.
	r = e.admin(t, "GET", "/audit?actor=alice", "").requireStatus(t, http.StatusOK)
	entries, _ = auditEntries(t, r)
	require.Equal(t, []string{"alice transfer.in bob", "alice transfer.out ann", "alice user.credits ann", "alice user.create bob"}, summary(entries))
	r = e.admin(t, "GET", "/audit?user=bob", "").requireStatus(t, http.StatusOK)
	entries, _ = auditEntries(t, r)
	require.Equal(t, []string{"alice transfer.in bob", "alice user.create bob"}, summary(entries))
	r = e.admin(t, "GET", "/audit?user=p", "").requireStatus(t, http.StatusOK)
	entries, _ = auditEntries(t, r)
	require.Empty(t, entries, "projects are not users")
	r = e.admin(t, "GET", "/audit?actor=ops&user=ann&limit=2", "").requireStatus(t, http.StatusOK)
	entries, next = auditEntries(t, r)
	require.Equal(t, []string{"ops user.key.rotate ann", "ops user.activate ann"}, summary(entries))
	r = e.admin(t, "GET", "/audit?actor=ops&user=ann&limit=2&cursor="+next, "").requireStatus(t, http.StatusOK)
	entries, next = auditEntries(t, r)
	require.Equal(t, []string{"ops user.deactivate ann", "ops user.credits ann"}, summary(entries))
	r = e.admin(t, "GET", "/audit?actor=ops&user=ann&limit=2&cursor="+next, "").requireStatus(t, http.StatusOK)
	entries, next = auditEntries(t, r)
	require.Equal(t, []string{"ops user.create ann"}, summary(entries))
	require.Empty(t, next)

	// Time range: from inclusive, to exclusive; dates or RFC 3339.
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	past := url.QueryEscape(start.Add(-time.Minute).Format(time.RFC3339))
	for query, n := range map[string]int{
		"from=" + future:                 0,
		"to=" + past:                     0,
		"from=" + past:                   len(all),
		"from=" + past + "&to=" + future: len(all),
		"to=2000-01-01":                  0,
		"from=2000-01-01":                len(all),
	} {
		entries, _ = auditEntries(t, e.admin(t, "GET", "/audit?"+query, "").requireStatus(t, http.StatusOK))
		require.Len(t, entries, n, query)
	}

	// Pagination walks every entry once, newest first, at any page size.
	for _, size := range []string{"1", "3", "5"} {
		var got []string
		cursor := ""
		for page := 0; page < 20; page++ {
			path := "/audit?limit=" + size
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			entries, cursor = auditEntries(t, e.admin(t, "GET", path, "").requireStatus(t, http.StatusOK))
			got = append(got, summary(entries)...)
			if cursor == "" {
				break
			}
		}
		require.Equal(t, all, got, "limit %s", size)
	}

	for query, field := range map[string]string{
		"limit=0":                       "limit",
		"limit=1001":                    "limit",
		"limit=ten":                     "limit",
		"cursor=nope":                   "cursor",
		"cursor=":                       "cursor",
		"from=yesterday":                "from",
		"to=2026-02-30":                 "to",
		"from=2026-03-02&to=2026-03-01": "to",
		"user=Ann":                      "user",
		"target=ann":                    "target",
	} {
		e.admin(t, "GET", "/audit?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	entries, _ = auditEntries(t, e.admin(t, "GET", "/audit?limit=1000", "").requireStatus(t, http.StatusOK))
	require.Len(t, entries, len(all))
	e.do(t, "GET", base+"/audit", "", "").requireError(t, http.StatusUnauthorized, "unauthenticated", "")
}
