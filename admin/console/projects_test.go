package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// apiRefusal asks the admin API directly what it says to a JSON request,
// so tests can check the console shows the API's own sentence.
func (e *env) apiRefusal(t testing.TB, method, path, body string) string {
	t.Helper()
	contentType := ""
	if body != "" {
		contentType = "application/json"
	}
	return e.apiRefusalAs(t, method, path, contentType, body)
}

// requireRefusal checks a refused form's page: its status and the API's
// sentence in #form-error.
func (p *page) requireRefusal(t *testing.T, status int, sentence string) {
	t.Helper()
	require.Equal(t, status, p.status, p.body)
	require.Contains(t, p.body, `id="form-error">`+html.EscapeString(sentence)+`</p>`)
}

// auditActions are the engine's audit entries for target, newest first.
func (e *env) auditActions(t *testing.T, target string) []metering.AuditEntry {
	t.Helper()
	entries, _, err := e.Engine.ListAudit(e.ctx, metering.AuditFilter{}, 1000)
	require.NoError(t, err)
	var out []metering.AuditEntry
	for _, a := range entries {
		if a.Target == target {
			out = append(out, a)
		}
	}
	return out
}

func (e *env) givenProject(t *testing.T, spec metering.ProjectSpec) {
	t.Helper()
	_, err := e.Engine.CreateProject(e.ctx, "setup", spec)
	require.NoError(t, err)
}

func (e *env) givenUser(t *testing.T, name, project string) string {
	t.Helper()
	_, key, err := e.Engine.CreateUser(e.ctx, "setup", metering.UserSpec{Username: name, Project: project, InitialCredits: 50 * metering.Micro})
	require.NoError(t, err)
	return key
}

func TestProjectsListAndCreate(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	p := b.get("/admin/projects")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `id="create-project-form"`)
	require.Contains(t, p.body, `id="projects"`)

	p = b.submit("/admin/projects", "/admin/projects", url.Values{"name": {"teach"}, "allowance_amount": {"12,5"},
		"allowance_period": {"daily"}, "allowance_timezone": {"Europe/Berlin"}, "pool_enabled": {"true"}})
	p.requireSeeOther(t, "/admin/projects")
	got, err := e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Equal(t, metering.Credits(12_500_000), got.AllowanceAmount)
	require.Equal(t, metering.PeriodDaily, got.Period)
	require.Equal(t, "Europe/Berlin", got.TimeZone)
	require.True(t, got.PoolEnabled)
	audit := e.auditActions(t, "teach")
	require.Len(t, audit, 1)
	require.Equal(t, "project.create", audit[0].Action)
	require.Equal(t, "ops", audit[0].Actor)

	p = b.get("/admin/projects")
	require.Contains(t, p.body, `id="flash">The project teach is created.`)
	require.Contains(t, p.body, `<tr data-project="teach">`)
	require.Contains(t, p.body, `href="/admin/projects/teach"`)
	require.Contains(t, p.body, "12.5")
	require.Contains(t, p.body, "Europe/Berlin")

	// Refusals show the API's sentence and keep what was typed.
	bad := e.apiRefusal(t, "POST", "/projects", `{"name":"Bad Name"}`)
	p = b.submit("/admin/projects", "/admin/projects", url.Values{"name": {"Bad Name"}, "allowance_amount": {"7"}, "allowance_period": {"weekly"}})
	p.requireRefusal(t, http.StatusBadRequest, bad)
	require.Contains(t, p.body, `value="Bad Name"`)
	require.Contains(t, p.body, `value="7"`)
	require.Contains(t, p.body, `<option value="weekly" selected>`)
	taken := e.apiRefusal(t, "POST", "/projects", `{"name":"teach"}`)
	p = b.submit("/admin/projects", "/admin/projects", url.Values{"name": {"teach"}})
	p.requireRefusal(t, http.StatusConflict, taken)
	zone := e.apiRefusal(t, "POST", "/projects", `{"name":"mars","allowance":{"timezone":"Mars/Base"}}`)
	p = b.submit("/admin/projects", "/admin/projects", url.Values{"name": {"mars"}, "allowance_timezone": {"Mars/Base"}})
	p.requireRefusal(t, http.StatusBadRequest, zone)
	_, err = e.Engine.GetProject(e.ctx, "mars")
	require.Error(t, err, "a refused form creates nothing")
}

func TestProjectSettings(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach", AllowanceAmount: 10 * metering.Micro, Period: metering.PeriodDaily, PoolEnabled: true})
	b := e.signedIn(t, adminSecret)
	p := b.get("/admin/projects/teach")
	require.Equal(t, http.StatusOK, p.status)
	for _, id := range []string{"project-form", "save-project", "pool-form", "pool-submit", "settle-form", "settle", "members", "delete-project"} {
		require.Contains(t, p.body, `id="`+id+`"`)
	}

	// Only the fields that differ are sent: the audit entry names them.
	p = b.submit("/admin/projects/teach", "/admin/projects/teach/settings", url.Values{"allowance_amount": {"10,0"},
		"allowance_period": {"weekly"}, "allowance_timezone": {"UTC"}, "pool_enabled": {"true"}, "pool_per_user_limit": {"5"}})
	p.requireSeeOther(t, "/admin/projects/teach")
	got, err := e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Equal(t, metering.PeriodWeekly, got.Period)
	require.NotNil(t, got.PoolPerUserLimit)
	require.Equal(t, 5*metering.Micro, *got.PoolPerUserLimit)
	require.Equal(t, 10*metering.Micro, got.AllowanceAmount)
	audit := e.auditActions(t, "teach")
	require.Equal(t, "project.update", audit[0].Action)
	require.Equal(t, "ops", audit[0].Actor)
	require.ElementsMatch(t, []string{"allowance.period", "pool.per_user_limit"}, detailKeys(audit[0].Details))
	require.Contains(t, b.get("/admin/projects/teach").body, `id="flash">The settings of teach are saved.`)

	// An empty limit removes it; unchecking the box turns the pool off.
	b.submit("/admin/projects/teach", "/admin/projects/teach/settings", url.Values{"allowance_amount": {"10"},
		"allowance_period": {"weekly"}, "allowance_timezone": {"UTC"}, "pool_per_user_limit": {""}}).
		requireSeeOther(t, "/admin/projects/teach")
	got, err = e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Nil(t, got.PoolPerUserLimit)
	require.False(t, got.PoolEnabled)

	// The same values again change nothing and record nothing.
	before := len(e.auditActions(t, "teach"))
	b.submit("/admin/projects/teach", "/admin/projects/teach/settings", url.Values{"allowance_amount": {"10"},
		"allowance_period": {"weekly"}, "allowance_timezone": {"UTC"}}).requireSeeOther(t, "/admin/projects/teach")
	require.Contains(t, b.get("/admin/projects/teach").body, `id="flash">Nothing was changed.`)
	require.Len(t, e.auditActions(t, "teach"), before)

	// A refusal keeps what was typed.
	sentence := e.apiRefusal(t, "PATCH", "/projects/teach", `{"allowance":{"timezone":"Mars/Base"}}`)
	p = b.submit("/admin/projects/teach", "/admin/projects/teach/settings", url.Values{"allowance_amount": {"11"},
		"allowance_period": {"weekly"}, "allowance_timezone": {"Mars/Base"}})
	p.requireRefusal(t, http.StatusBadRequest, sentence)
	require.Contains(t, p.body, `value="Mars/Base"`)
	require.Contains(t, p.body, `value="11"`)
	got, err = e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Equal(t, 10*metering.Micro, got.AllowanceAmount, "a refused change writes nothing")
}

func detailKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestProjectPoolAndSettle(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach", AllowanceAmount: 3 * metering.Micro, Period: metering.PeriodDaily, PoolEnabled: true})
	e.givenUser(t, "ann", "teach")
	b := e.signedIn(t, adminSecret)

	p := b.submit("/admin/projects/teach", "/admin/projects/teach/pool", url.Values{"delta": {"100,5"}, "note": {"term start"}})
	p.requireSeeOther(t, "/admin/projects/teach")
	got, err := e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Equal(t, metering.Credits(100_500_000), got.PoolBalance)
	audit := e.auditActions(t, "teach")
	require.Equal(t, "project.pool", audit[0].Action)
	require.Equal(t, "ops", audit[0].Actor)
	require.Equal(t, "term start", audit[0].Details["note"])
	p = b.get("/admin/projects/teach")
	require.Contains(t, p.body, `id="flash">The pool now holds 100.5 credits.`)
	require.Contains(t, p.body, `id="pool-balance">100.5 credits`)

	// Taking more than the pool holds: the API's sentence, nothing written.
	sentence := e.apiRefusal(t, "POST", "/projects/teach/pool", `{"delta":-1000,"note":"oops"}`)
	p = b.submit("/admin/projects/teach", "/admin/projects/teach/pool", url.Values{"delta": {"-1000"}, "note": {"oops"}})
	p.requireRefusal(t, http.StatusConflict, sentence)
	require.Contains(t, p.body, `value="-1000"`)
	got, err = e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Equal(t, metering.Credits(100_500_000), got.PoolBalance)

	b.submit("/admin/projects/teach", "/admin/projects/teach/settle", nil).requireSeeOther(t, "/admin/projects/teach")
	audit = e.auditActions(t, "teach")
	require.Equal(t, "project.settle", audit[0].Action)
	require.Equal(t, "ops", audit[0].Actor)
	require.Contains(t, b.get("/admin/projects/teach").body, `id="flash">The project teach is settled.`)
}

func TestProjectMembersArePaged(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach"})
	e.givenProject(t, metering.ProjectSpec{Name: "other"})
	e.givenUser(t, "zed", "other")
	for i := 0; i < 51; i++ {
		e.givenUser(t, "u"+string(rune('a'+i/26))+string(rune('a'+i%26)), "teach")
	}
	b := e.signedIn(t, adminSecret)
	p := b.get("/admin/projects/teach")
	require.Equal(t, 50, strings.Count(p.body, "<tr data-user="))
	require.Contains(t, p.body, `<tr data-user="uaa">`)
	require.Contains(t, p.body, `href="/admin/users/uaa"`)
	require.NotContains(t, p.body, `data-user="zed"`, "only this project's members")
	require.NotContains(t, p.body, `id="first-page"`)
	next := hrefOf(t, p, "next-page")
	p = b.get(next)
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, 1, strings.Count(p.body, "<tr data-user="))
	require.Contains(t, p.body, `<tr data-user="uby">`)
	require.NotContains(t, p.body, `id="next-page"`)
	require.Contains(t, p.body, `id="first-page"`)
}

// hrefOf is the href of the link with id on the page, unescaped.
func hrefOf(t *testing.T, p *page, id string) string {
	t.Helper()
	i := strings.Index(p.body, `id="`+id+`"`)
	require.GreaterOrEqual(t, i, 0, "no #%s on the page", id)
	start := strings.LastIndex(p.body[:i], `href="`)
	require.GreaterOrEqual(t, start, 0)
	start += len(`href="`)
	end := strings.Index(p.body[start:], `"`)
	return html.UnescapeString(p.body[start : start+end])
}

func TestProjectDelete(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach"})
	e.givenProject(t, metering.ProjectSpec{Name: "old"})
	e.givenUser(t, "ann", "teach")
	b := e.signedIn(t, adminSecret)

	p := b.get("/admin/projects/teach/delete")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `id="delete-form"`)
	require.Contains(t, p.body, `id="delete-confirm"`)
	require.Contains(t, p.body, "Delete the project teach?")
	// Users assigned: the API's 409 on the question page again.
	sentence := e.apiRefusal(t, "DELETE", "/projects/teach", "")
	p = b.submit("/admin/projects/teach/delete", "/admin/projects/teach/delete", nil)
	p.requireRefusal(t, http.StatusConflict, sentence)
	require.Contains(t, p.body, `id="delete-form"`)
	_, err := e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)

	b.submit("/admin/projects/old/delete", "/admin/projects/old/delete", nil).requireSeeOther(t, "/admin/projects")
	_, err = e.Engine.GetProject(e.ctx, "old")
	require.Error(t, err)
	audit := e.auditActions(t, "old")
	require.Equal(t, "project.delete", audit[0].Action)
	require.Equal(t, "ops", audit[0].Actor)
	p = b.get("/admin/projects")
	require.Contains(t, p.body, `id="flash">The project old is deleted.`)
	require.NotContains(t, p.body, `data-project="old"`)
	require.Equal(t, http.StatusNotFound, b.get("/admin/projects/old").status)
}

func TestProjectsViewerReadsOnly(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach", PoolEnabled: true})
	e.givenUser(t, "ann", "teach")
	v := e.signedIn(t, viewerSecret)
	p := v.get("/admin/projects")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `data-project="teach"`)
	require.NotContains(t, p.body, `id="create-project-form"`)
	p = v.get("/admin/projects/teach")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `data-user="ann"`)
	for _, id := range []string{"project-form", "pool-form", "settle-form", "delete-project"} {
		require.NotContains(t, p.body, `id="`+id+`"`, id)
	}
	csrf := p.csrf(t) // the sign-out form's
	for _, action := range []string{"/admin/projects", "/admin/projects/teach/settings", "/admin/projects/teach/pool",
		"/admin/projects/teach/settle", "/admin/projects/teach/delete"} {
		p = v.post(action, url.Values{"csrf": {csrf}, "name": {"x"}, "delta": {"5"}, "allowance_period": {"monthly"}})
		require.Equal(t, http.StatusForbidden, p.status, action)
		require.Contains(t, p.body, "viewer", action)
	}
	require.Equal(t, http.StatusForbidden, v.get("/admin/projects/teach/delete").status)
	got, err := e.Engine.GetProject(e.ctx, "teach")
	require.NoError(t, err)
	require.Zero(t, got.PoolBalance)
	require.Equal(t, metering.PeriodNone, got.Period)
}

func TestProjectsInGerman(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach", AllowanceAmount: 1234_500_000, Period: metering.PeriodMonthly})
	b := e.browser(t)
	b.lang = "de-DE,de;q=0.9"
	b.signIn(adminSecret)
	p := b.get("/admin/projects")
	require.Contains(t, p.body, "<title>Projekte · Tollgate</title>")
	require.Contains(t, p.body, "Neues Projekt")
	require.Contains(t, p.body, "1.234,5")
	require.Contains(t, p.body, "monatlich")
	p = b.get("/admin/projects/teach")
	require.Contains(t, p.body, "Kontingent")
	require.Contains(t, p.body, "Mitglieder")
	require.Contains(t, p.body, "Jetzt abrechnen")
}

func TestProjectUsageAuditPagesObeyTheCSP(t *testing.T) {
	e := setup(t)
	e.givenProject(t, metering.ProjectSpec{Name: "teach"})
	b := e.signedIn(t, adminSecret)
	for _, path := range []string{"/admin/projects", "/admin/projects/teach", "/admin/projects/teach/delete",
		"/admin/usage", "/admin/audit"} {
		p := b.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		require.NotContains(t, p.body, "<script>", path)
		require.NotContains(t, p.body, " style=", path)
		require.NotRegexp(t, `\son[a-z]+=`, p.body, "no event handler attributes: %s", path)
		require.Equal(t, 1, strings.Count(p.body, "<script"), "only console.js: %s", path)
	}
	require.Equal(t, http.StatusNotFound, b.get("/admin/projects/nowhere").status)
}
