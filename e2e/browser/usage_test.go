package browser

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// After a metered request the usage screen previews it by day (chart and
// table) and by user, and exports the same filters as CSV; the user's
// own page shows it too.
func TestUsage(t *testing.T) {
	name := uniqueName("user-usage")
	key := createUser(t, map[string]any{"username": name, "initial_credits": 10})
	for i := 0; i < 2; i++ {
		if status := metered(t, key); status != http.StatusOK {
			t.Fatalf("the metered request got HTTP %d", status)
		}
	}
	waitFor(t, "the ledger to record the two requests", func() bool {
		var out struct {
			Rows []struct {
				Requests json.Number `json:"requests"`
			} `json:"rows"`
		}
		mustAPI(t, http.StatusOK, "GET", "/usage?user="+name+"&group_by=none", nil, &out)
		return len(out.Rows) == 1 && out.Rows[0].Requests.String() == "2"
	})

	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/usage")
	p.need("#usage-filter")
	f := "#usage-filter "
	p.fill(f+`[name="user"]`, name)
	p.fill(f+`input[type="date"][name="from"]`, today())
	p.fill(f+`input[type="date"][name="to"]`, today())
	p.fill(f+`select[name="group_by"]`, "day")
	p.click("#usage-preview")
	p.need("#usage-rows")
	if rows := p.count("#usage-rows tbody tr"); rows != 1 {
		t.Errorf("#usage-rows has %d rows for one day of usage, want 1", rows)
	}
	if row := p.text("#usage-rows tbody tr"); !strings.Contains(row, "2") {
		t.Errorf("the day's row %q does not show 2 requests / 2 credits", row)
	}
	if p.count("main svg") == 0 {
		t.Error("no chart (svg) on the usage page")
	}
	p.screenshot("usage")

	p.fill(f+`select[name="group_by"]`, "user")
	p.click("#usage-preview")
	if row := p.text("#usage-rows tbody tr"); !strings.Contains(row, name) {
		t.Errorf("grouped by user, the row %q does not name %s", row, name)
	}
	href := p.attr("#usage-export", "href")
	if m := missing(href, "user="+name, "group_by=user", "from="+today()); len(m) > 0 {
		t.Errorf("#usage-export links to %q, which lacks %v", href, m)
	}
	got := p.fetch(href)
	if got.Status != http.StatusOK || !strings.HasPrefix(got.ContentType, "text/csv") || !strings.Contains(got.Body, name) {
		t.Errorf("the usage export answered HTTP %d %q:\n%s", got.Status, got.ContentType, got.Body)
	}

	p.goTo("/admin/users/" + name)
	p.need("#usage")
	if table := p.text("#usage"); !strings.Contains(table, "2") {
		t.Errorf("the user page's #usage does not show the requests:\n%s", table)
	}
	if p.count("main svg") == 0 {
		t.Error("no usage chart (svg) on the user page")
	}
}
