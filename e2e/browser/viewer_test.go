package browser

import (
	"net/http"
	"strings"
	"testing"
)

// A viewer sees no write controls, and a write it forces anyway is
// refused by the console.
func TestViewerReadOnly(t *testing.T) {
	p := newPage(t)
	p.signIn(viewerToken)
	if who := p.text("#signed-in-as"); !strings.Contains(who, "viewer") {
		t.Errorf("#signed-in-as says %q, want the viewer", who)
	}
	p.goTo("/admin/prices")
	p.need("#prices")
	if p.has("#price-form") {
		t.Error("a viewer sees the price form #price-form")
	}
	if n := p.count(`#prices button`); n != 0 {
		t.Errorf("a viewer sees %d buttons in the prices table", n)
	}
	// Forced: a form the viewer builds in the page, with the session's
	// own CSRF token, posting a price.
	p.goTo("/admin/prices")
	model := uniqueName("viewer-model")
	status := p.submitForged("/admin/prices", map[string]string{"model": model, "per_request": "1"})
	if status != http.StatusForbidden {
		t.Errorf("a viewer's forced POST answered HTTP %d, want 403", status)
	}
	if body := p.bodyText(); !strings.Contains(body, "viewer") {
		t.Errorf("the refusal does not say the viewer can only read:\n%s", body)
	}
	if got := api(t, "GET", "/prices/"+model, nil, nil); got != http.StatusNotFound {
		t.Errorf("after the viewer's forced POST GET /prices/%s is HTTP %d, want 404", model, got)
	}
}

// On the users, user and projects screens a viewer reads and finds no
// control that writes.
func TestViewerSeesNoWriteControls(t *testing.T) {
	name := uniqueName("viewed")
	createUser(t, map[string]any{"username": name, "initial_credits": 5})
	p := newPage(t)
	p.signIn(viewerToken)
	p.goTo("/admin/users")
	p.need("#users")
	if p.has("#new-user") || p.has("#import-users") {
		t.Error("a viewer sees the links to create (#new-user) or import (#import-users) users")
	}
	p.goTo("/admin/users/" + name)
	p.need("#balances")
	for _, sel := range []string{"#credits-form", "#edit-user-form", "#transfer-form", "#rotate-key", "#view-key",
		"#delete-user", "#deactivate-form", "#activate-form"} {
		if p.has(sel) {
			t.Errorf("a viewer sees %s on the user page", sel)
		}
	}
	p.goTo("/admin/users/" + name + "/rotate")
	if p.has("#rotate-form") {
		t.Error("a viewer is offered #rotate-form")
	}
	p.goTo("/admin/projects")
	p.need("#projects")
	if p.has("#create-project-form") {
		t.Error("a viewer sees #create-project-form")
	}
}
