package browser

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// createProject makes a project through the API.
func createProject(t *testing.T, name string, spec map[string]any) {
	t.Helper()
	body := map[string]any{"name": name}
	for k, v := range spec {
		body[k] = v
	}
	mustAPI(t, http.StatusCreated, "POST", "/projects", body, nil)
}

// Create a user with every field of the form; the key is shown once in
// the POST's answer (never in a URL) and works for a metered request.
func TestCreateUser(t *testing.T) {
	proj := uniqueName("newproj")
	createProject(t, proj, nil)
	name := uniqueName("created")
	expires := time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")

	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/users")
	p.click("#new-user")
	if got := p.path(); got != "/admin/users/new" {
		t.Fatalf("#new-user led to %s, want /admin/users/new", got)
	}
	p.need("#create-user-form")
	p.screenshot("create-user")
	f := "#create-user-form "
	p.fill(f+`[name="username"]`, name)
	p.fill(f+`select[name="project"]`, proj)
	p.fill(f+`[name="initial_credits"]`, "10")
	p.fill(f+`[name="purchased"]`, "2,5")
	p.check(f+`[name="partner"]`, true)
	p.fill(f+`[name="monthly_grant"]`, "1")
	p.fill(f+`input[type="date"][name="key_expires_at"]`, expires)
	if status := p.click("#create-user"); status != http.StatusOK {
		t.Errorf("creating a user answered HTTP %d, want 200 (the key is shown in the POST's answer)", status)
	}
	key := p.text("#api-key")
	if !strings.HasPrefix(key, "tg_") {
		t.Fatalf("#api-key shows %q, not a key", key)
	}
	if strings.Contains(p.path(), key) || strings.Contains(p.path(), key[3:]) {
		t.Errorf("the key is in the URL %s", p.path())
	}
	if href := p.attr("#open-user", "href"); !strings.HasSuffix(href, "/admin/users/"+name) {
		t.Errorf("#open-user links to %q, want /admin/users/%s", href, name)
	}
	if !p.has(`button[data-copy="api-key"]`) {
		t.Error("no copy button for #api-key")
	}
	p.screenshot("create-user-key")

	u := getUser(t, name)
	if u.Project == nil || *u.Project != proj || u.Awarded.String() != "10" || u.Purchased.String() != "2.5" ||
		!u.Partner || u.MonthlyGrant.String() != "1" {
		t.Errorf("the API has %+v, want project %s, awarded 10, purchased 2.5, partner, monthly grant 1", u, proj)
	}
	if u.Key.ExpiresAt == nil || !strings.HasPrefix(*u.Key.ExpiresAt, expires) {
		t.Errorf("the key expires at %v, want the start of %s (UTC)", u.Key.ExpiresAt, expires)
	}
	if status := metered(t, key); status != http.StatusOK {
		t.Errorf("the created key got HTTP %d from GET /v1/models, want 200", status)
	}

	// The same username again: the API's sentence, the typed values kept.
	_, sentence := apiRefusal(t, "POST", "/users", map[string]any{"username": name})
	p.goTo("/admin/users/new")
	p.fill(f+`[name="username"]`, name)
	p.fill(f+`[name="initial_credits"]`, "7")
	if status := p.click("#create-user"); status != http.StatusConflict {
		t.Errorf("a taken username answered HTTP %d, want 409", status)
	}
	if msg := p.text("#form-error"); msg != sentence {
		t.Errorf("#form-error says %q, want the API's sentence %q", msg, sentence)
	}
	if v := p.value(f + `[name="initial_credits"]`); v != "7" {
		t.Errorf("the refused form lost initial_credits: %q", v)
	}
	if p.has("#api-key") {
		t.Error("a refused creation shows #api-key")
	}
}

// The users list: search, project, status, key status and balance
// filters, the sort, the row links and the CSV export of the same filters.
func TestUsersList(t *testing.T) {
	stem := "lst" + randomHex(3)
	proj := uniqueName("listproj")
	createProject(t, proj, nil)
	a, b, c := stem+"-a", stem+"-b", stem+"-c"
	createUser(t, map[string]any{"username": a, "project": proj, "initial_credits": 30})
	createUser(t, map[string]any{"username": b, "initial_credits": 5})
	createUser(t, map[string]any{"username": c, "project": proj})
	mustAPI(t, http.StatusOK, "POST", "/users/"+c+"/deactivate", nil, nil)

	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/users")
	for _, sel := range []string{"#users", "#user-filter", "#filter-apply", "#new-user", "#import-users", "#export-csv"} {
		p.need(sel)
	}
	f := "#user-filter "
	list := func(filters map[string]string) []string {
		t.Helper()
		p.goTo("/admin/users")
		p.fill(f+`[name="search"]`, stem)
		for k, v := range filters {
			p.fill(f+`[name="`+k+`"]`, v)
		}
		p.click("#filter-apply")
		return p.attrs("#users tr[data-user]", "data-user")
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: the list shows %v, want %v", what, got, want)
		}
	}
	check("search", list(nil), a, b, c)
	if got := p.path(); !strings.Contains(got, "search="+stem) {
		t.Errorf("the filter form is not a GET carrying search: %s", got)
	}
	p.screenshot("users")
	if href := p.attr(`#users tr[data-user="`+a+`"] td:first-child a`, "href"); !strings.HasSuffix(href, "/admin/users/"+a) {
		t.Errorf("the first cell of %s links to %q", a, href)
	}
	row := p.text(`#users tr[data-user="` + a + `"]`)
	if m := missing(row, a, proj, "30"); len(m) > 0 {
		t.Errorf("the row of %s lacks %v: %q", a, m, row)
	}
	check("project", list(map[string]string{"project": proj}), a, c)
	check("no project", list(map[string]string{"project": "none"}), b)
	check("inactive", list(map[string]string{"status": "inactive"}), c)
	check("key revoked", list(map[string]string{"key_status": "revoked"}), c)
	check("sorted by credits", list(map[string]string{"sort": "-credits"}), a, b, c)
	zero := list(map[string]string{"balance": "zero"})
	if !slices.Contains(zero, c) || slices.Contains(zero, a) {
		t.Errorf("balance zero lists %v: want %s (0 credits) and not %s (30)", zero, c, a)
	}

	// The export link carries the current filters and answers CSV.
	list(map[string]string{"project": proj})
	href := p.attr("#export-csv", "href")
	if m := missing(href, "/admin/users/export", "search="+stem, "project="+proj); len(m) > 0 {
		t.Errorf("#export-csv links to %q, which lacks %v", href, m)
	}
	got := p.fetch(href)
	if got.Status != http.StatusOK || !strings.HasPrefix(got.ContentType, "text/csv") {
		t.Fatalf("the export answered HTTP %d %q, want 200 text/csv", got.Status, got.ContentType)
	}
	if !strings.HasPrefix(got.Body, "username,project,") || !strings.Contains(got.Body, a) ||
		!strings.Contains(got.Body, c) || strings.Contains(got.Body, b) {
		t.Errorf("the export of project %s is not %s and %s only:\n%s", proj, a, c, got.Body)
	}
}
