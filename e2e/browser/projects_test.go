package browser

import (
	"net/http"
	"strings"
	"testing"
)

// Create a project, change its allowance and pool limit, add to its pool
// with a note, settle it, see its members, and delete it (refused while
// it has members).
func TestProjects(t *testing.T) {
	name := uniqueName("proj")
	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/projects")
	p.need("#projects")
	f := "#create-project-form "
	p.fill(f+`[name="name"]`, name)
	p.fill(f+`[name="allowance_amount"]`, "100")
	p.fill(f+`select[name="allowance_period"]`, "daily")
	p.fill(f+`[name="allowance_timezone"]`, "Europe/Berlin")
	p.check(f+`[name="pool_enabled"]`, true)
	p.click("#create-project")
	var pr project
	mustAPI(t, http.StatusOK, "GET", "/projects/"+name, nil, &pr)
	if pr.Allowance.Amount.String() != "100" || pr.Allowance.Period != "daily" || pr.Allowance.Timezone != "Europe/Berlin" || !pr.Pool.Enabled {
		t.Errorf("the created project is %+v, want 100 daily in Europe/Berlin with a pool", pr)
	}
	p.goTo("/admin/projects")
	p.need(`#projects tr[data-project="` + name + `"]`)
	p.screenshot("projects")

	p.click(`#projects tr[data-project="` + name + `"] a`)
	if got := p.path(); got != "/admin/projects/"+name {
		t.Fatalf("the project's row led to %s, want /admin/projects/%s", got, name)
	}
	s := "#project-form "
	p.fill(s+`[name="allowance_amount"]`, "50")
	p.fill(s+`select[name="allowance_period"]`, "weekly")
	p.fill(s+`[name="pool_per_user_limit"]`, "20")
	p.click("#save-project")
	mustAPI(t, http.StatusOK, "GET", "/projects/"+name, nil, &pr)
	if pr.Allowance.Amount.String() != "50" || pr.Allowance.Period != "weekly" || pr.Pool.PerUserLimit == nil || pr.Pool.PerUserLimit.String() != "20" {
		t.Errorf("after #save-project the project is %+v, want 50 weekly, pool limit 20", pr)
	}
	p.fill(s+`[name="pool_per_user_limit"]`, "")
	p.click("#save-project")
	mustAPI(t, http.StatusOK, "GET", "/projects/"+name, nil, &pr)
	if pr.Pool.PerUserLimit != nil {
		t.Errorf("an empty pool limit left %s, want none (null)", pr.Pool.PerUserLimit)
	}

	p.fill(`#pool-form [name="delta"]`, "500")
	p.fill(`#pool-form [name="note"]`, "browser pool top-up")
	p.click("#pool-submit")
	mustAPI(t, http.StatusOK, "GET", "/projects/"+name, nil, &pr)
	if pr.Pool.Balance.String() != "500" {
		t.Errorf("after #pool-submit the pool holds %s, want 500", pr.Pool.Balance)
	}
	var audit auditPage
	mustAPI(t, http.StatusOK, "GET", "/audit?actor=admin&limit=1000", nil, &audit)
	if !audit.has(func(e auditEntry) bool {
		return strings.Contains(e.Target, name) && strings.Contains(string(e.Details), "browser pool top-up")
	}) {
		t.Error("no audit entry carries the pool note")
	}

	if status := p.click("#settle"); status != http.StatusOK {
		t.Errorf("#settle ended on HTTP %d", status)
	}
	p.need("#flash")

	member := uniqueName("member")
	createUser(t, map[string]any{"username": member, "project": name})
	p.goTo("/admin/projects/" + name)
	p.need(`#members tr[data-user="` + member + `"]`)
	p.screenshot("project")

	p.click("#delete-project")
	if got := p.path(); got != "/admin/projects/"+name+"/delete" {
		t.Errorf("#delete-project led to %s, want /admin/projects/%s/delete", got, name)
	}
	_, sentence := apiRefusal(t, "DELETE", "/projects/"+name, nil)
	if status := p.click("#delete-confirm"); status != http.StatusConflict {
		t.Errorf("deleting a project with a member answered HTTP %d, want 409", status)
	}
	if msg := p.text("#form-error"); msg != sentence {
		t.Errorf("#form-error says %q, want the API's sentence %q", msg, sentence)
	}
	mustAPI(t, http.StatusNoContent, "DELETE", "/users/"+member, nil, nil)
	p.goTo("/admin/projects/" + name + "/delete")
	p.click("#delete-confirm")
	if got := api(t, "GET", "/projects/"+name, nil, nil); got != http.StatusNotFound {
		t.Errorf("after #delete-confirm GET /projects/%s answers %d, want 404", name, got)
	}
}
