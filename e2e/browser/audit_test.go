package browser

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

type auditEntry struct {
	At      string          `json:"at"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Details json.RawMessage `json:"details"`
}

type auditPage struct {
	Entries    []auditEntry `json:"entries"`
	NextCursor string       `json:"next_cursor"`
}

func (a auditPage) has(match func(auditEntry) bool) bool {
	for _, e := range a.Entries {
		if match(e) {
			return true
		}
	}
	return false
}

// A write made in the console appears in the audit log under the admin
// token's name, with its note readable; the log pages.
func TestAudit(t *testing.T) {
	name := uniqueName("audited")
	createUser(t, map[string]any{"username": name, "initial_credits": 100})
	note := "audit-note-" + randomHex(3)

	p := openUser(t, name)
	p.fill(`#credits-form [name="delta"]`, "2")
	p.fill(`#credits-form [name="note"]`, note)
	p.click("#credits-submit")
	// More entries than a page holds, to page through.
	for i := 0; i < 60; i++ {
		mustAPI(t, http.StatusOK, "POST", "/users/"+name+"/credits", map[string]any{"delta": 1}, nil)
	}

	p.goTo("/admin/audit")
	p.need("#audit-filter")
	p.fill(`#audit-filter [name="actor"]`, "admin")
	p.fill(`#audit-filter [name="user"]`, name)
	p.click("#audit-apply")
	p.need("#audit")
	table := p.text("#audit")
	if m := missing(table, "admin", name); len(m) > 0 {
		t.Errorf("#audit lacks %v", m)
	}
	p.screenshot("audit")
	p.need("#next-page")
	first := p.texts("#audit tbody tr")
	p.click("#next-page")
	second := p.texts("#audit tbody tr")
	if len(second) == 0 || len(first)+len(second) < 62 {
		t.Errorf("the two pages hold %d and %d entries, want all 62 of %s (creation, 61 credit changes)", len(first), len(second), name)
	}
	if !strings.Contains(p.text("#audit")+strings.Join(first, "\n"), note) {
		t.Errorf("no audit row shows the note %q readably", note)
	}
	if !strings.Contains(p.path(), "user="+name) {
		t.Errorf("#next-page dropped the filters: %s", p.path())
	}
}
