package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// userFixture creates the project "teach" and users in it (or in none
// when project is ""), returning each user's key.
type userFixture struct {
	e    *env
	keys map[string]string
}

func newUserFixture(t *testing.T, e *env) *userFixture {
	t.Helper()
	_, err := e.Engine.CreateProject(e.ctx, "setup", metering.ProjectSpec{Name: "teach", Period: metering.PeriodNone})
	require.NoError(t, err)
	_, err = e.Engine.CreateProject(e.ctx, "setup", metering.ProjectSpec{Name: "staff", Period: metering.PeriodNone})
	require.NoError(t, err)
	return &userFixture{e: e, keys: map[string]string{}}
}

func (f *userFixture) user(t *testing.T, spec metering.UserSpec) {
	t.Helper()
	_, key, err := f.e.Engine.CreateUser(f.e.ctx, "setup", spec)
	require.NoError(t, err)
	f.keys[spec.Username] = key
}

// spend charges cost to the user's key and records it in the ledger.
func (f *userFixture) spend(t *testing.T, username string, cost metering.Credits) {
	t.Helper()
	res, err := f.e.Engine.Charge(f.e.ctx, f.keys[username], cost, "POST /v1/chat/completions")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	f.e.Drain(t)
}

func (e *env) userNow(t *testing.T, username string) metering.UserView {
	t.Helper()
	u, err := e.Engine.GetUser(e.ctx, username)
	require.NoError(t, err)
	return u
}

// userFormError is the text of the page's #form-error, unescaped.
func userFormError(t *testing.T, p *page) string {
	t.Helper()
	m := formError.FindAllStringSubmatch(p.body, -1)
	require.Len(t, m, 1, "the page shows one form error: %s", p.body)
	return html.UnescapeString(m[0][1])
}

// userAuditByOps is every entry the console's admin token wrote, newest first.
func (e *env) userAuditByOps(t *testing.T) []metering.AuditEntry {
	t.Helper()
	entries, _, err := e.Engine.ListAudit(e.ctx, metering.AuditFilter{Actor: "ops"}, 100)
	require.NoError(t, err)
	return entries
}

func userTestCredits(t *testing.T, s string) metering.Credits {
	t.Helper()
	c, err := metering.ParseCredits(s)
	require.NoError(t, err)
	return c
}

func TestUserPageShowsBalancesKeyAndUsage(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann", Project: "teach", InitialCredits: userTestCredits(t, "1234.5"),
		Purchased: userTestCredits(t, "3")})
	f.spend(t, "ann", 2*metering.Micro)

	b := e.signedIn(t, adminSecret)
	// The console's clock to the engine's (real) time, so the 30 days
	// shown include the charge's day even across midnight.
	e.clock.Advance(time.Since(e.clock.Now()))
	p := b.get("/admin/users/ann")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `id="balances"`)
	require.Contains(t, p.body, `<dd id="effective-credits" class="user-effective">1,235.5</dd>`)
	require.Contains(t, p.body, `<dd id="awarded-credits">1,232.5</dd>`)
	require.Contains(t, p.body, `<dd id="purchased-credits">3</dd>`)
	require.Contains(t, p.body, `<code id="key-prefix">`+metering.KeyDisplayPrefix(f.keys["ann"])+`…</code>`)
	require.Contains(t, p.body, `<span class="badge active" id="key-status">active</span>`)
	require.NotContains(t, p.body, f.keys["ann"], "the page never shows the key itself")

	// The charge: a bar in the chart and a row in the table (1 request,
	// 2 credits) on the day it was made.
	require.Contains(t, p.body, `<svg class="chart"`)
	require.Regexp(t, `<rect class="bar" [^>]*><title>[^<]*: 2</title>`, p.body, "a bar of 2 credits")
	require.Contains(t, p.body, `id="usage"`)
	require.Regexp(t, `(?s)<tr data-day="\d{4}-\d{2}-\d{2}">.*?<td class="num">1</td>\s*<td class="num">2</td>`, p.body)

	// Every control, with the contract's ids; the rename is locked once
	// the user has usage.
	for _, id := range []string{"edit-user-form", "save-user", "credits-form", "credits-submit", "transfer-form",
		"transfer-submit", "view-key", "rotate-key", "deactivate-form", "deactivate", "delete-user", "invites"} {
		require.Contains(t, p.body, `id="`+id+`"`, id)
	}
	require.Regexp(t, `<input id="edit-username" name="username" value="ann" disabled`, p.body)
	require.Contains(t, p.body, `<option value="teach" selected>teach</option>`)

	// In German: the same page, German words and numbers.
	b.lang = "de-DE,de;q=0.9"
	de := b.get("/admin/users/ann")
	require.Equal(t, http.StatusOK, de.status)
	require.Contains(t, de.body, `<html lang="de">`)
	require.Contains(t, de.body, "Verfügbar für die nächste Anfrage")
	require.Contains(t, de.body, `<dd id="effective-credits" class="user-effective">1.235,5</dd>`)
	require.Contains(t, de.body, "Schlüssel erneuern")
	require.Contains(t, de.body, "Credits gutschreiben oder abziehen")
}

func TestUserPageOfAnUnknownUserIsNotFound(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	for _, path := range []string{"/admin/users/nobody", "/admin/users/nobody/key", "/admin/users/nobody/delete"} {
		p := b.get(path)
		require.Equal(t, http.StatusNotFound, p.status, path)
		require.Contains(t, p.body, "nobody", "the API's sentence names the user: %s", path)
	}
}

func TestUserEditSendsOnlyWhatChanged(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "bob"})
	b := e.signedIn(t, adminSecret)

	expires := time.Now().UTC().AddDate(0, 0, 40).Format(time.DateOnly)
	p := b.submit("/admin/users/bob", "/admin/users/bob/edit", url.Values{"username": {"bobby"}, "project": {"teach"},
		"partner": {"true"}, "monthly_grant": {"12,5"}, "key_expires_at": {expires}})
	p.requireSeeOther(t, "/admin/users/bobby")
	u := e.userNow(t, "bobby")
	require.Equal(t, "teach", u.ProjectName)
	require.True(t, u.Partner)
	require.Equal(t, userTestCredits(t, "12.5"), u.MonthlyGrant)
	require.NotNil(t, u.Key.ExpiresAt)
	require.Equal(t, expires+"T00:00:00Z", u.Key.ExpiresAt.UTC().Format(time.RFC3339), "the start of the day, UTC")
	audit := e.userAuditByOps(t)
	require.Len(t, audit, 1)
	require.Equal(t, "user.update", audit[0].Action)
	page := b.get("/admin/users/bobby")
	require.Contains(t, page.body, `id="flash">User bobby is saved.`)
	require.Contains(t, page.body, `name="key_expires_at" value="`+expires+`"`)

	// The same values again change nothing and record nothing.
	p = b.submit("/admin/users/bobby", "/admin/users/bobby/edit", url.Values{"username": {"bobby"}, "project": {"teach"},
		"partner": {"true"}, "monthly_grant": {"12.50"}, "key_expires_at": {expires}})
	p.requireSeeOther(t, "/admin/users/bobby")
	require.Contains(t, b.get("/admin/users/bobby").body, "Nothing was changed.")
	require.Len(t, e.userAuditByOps(t), len(audit))

	// Emptied fields: no project, no grant, no expiry. Only those are sent:
	// the unchanged partner flag is not in the audit entry.
	p = b.submit("/admin/users/bobby", "/admin/users/bobby/edit", url.Values{"username": {"bobby"}, "project": {""},
		"partner": {"true"}, "monthly_grant": {""}, "key_expires_at": {""}})
	p.requireSeeOther(t, "/admin/users/bobby")
	u = e.userNow(t, "bobby")
	require.Empty(t, u.ProjectName)
	require.Zero(t, u.MonthlyGrant)
	require.Nil(t, u.Key.ExpiresAt)
	last := e.userAuditByOps(t)[0]
	require.Equal(t, "user.update", last.Action)
	require.NotContains(t, last.Details, "partner")
	require.NotContains(t, last.Details, "username")
	require.Contains(t, last.Details, "project")
}

func TestUserEditShowsTheAPIsSentenceAndKeepsWhatWasTyped(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "cid"})
	f.user(t, metering.UserSpec{Username: "ann", Project: "teach", InitialCredits: 5 * metering.Micro})
	f.spend(t, "ann", metering.Micro)
	b := e.signedIn(t, adminSecret)

	p := b.submit("/admin/users/cid", "/admin/users/cid/edit", url.Values{"username": {"cid"}, "project": {"staff"},
		"monthly_grant": {"7"}, "key_expires_at": {"2020-01-01"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, userFormError(t, p), "key_expires_at must be in the future")
	require.Contains(t, p.body, `name="key_expires_at" value="2020-01-01"`, "the typed date stays")
	require.Contains(t, p.body, `<option value="staff" selected>staff</option>`, "the typed project stays")
	require.Contains(t, p.body, `name="monthly_grant" inputmode="decimal" value="7"`)
	require.Empty(t, e.userNow(t, "cid").ProjectName, "nothing was written")

	// A rename of a user with usage, posted past the disabled field: 409.
	p = b.submit("/admin/users/ann", "/admin/users/ann/edit", url.Values{"username": {"anna"}, "project": {"teach"}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Equal(t, `User "ann" has usage history, which keeps its name; it cannot be renamed.`, userFormError(t, p))

	// An unknown project.
	p = b.submit("/admin/users/cid", "/admin/users/cid/edit", url.Values{"username": {"cid"}, "project": {"nope"}})
	require.Contains(t, userFormError(t, p), "nope")
}

func TestUserCreditsForm(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann", InitialCredits: 100 * metering.Micro})
	b := e.signedIn(t, adminSecret)

	p := b.submit("/admin/users/ann", "/admin/users/ann/credits", url.Values{"delta": {"-20,5"}, "bucket": {"awarded"}, "note": {"Korrektur"}})
	p.requireSeeOther(t, "/admin/users/ann")
	require.Equal(t, userTestCredits(t, "79.5"), e.userNow(t, "ann").Live.Awarded)
	entry := e.auditOf(t, "ann")[0]
	require.Equal(t, "user.credits", entry.Action)
	require.Equal(t, "ops", entry.Actor)
	require.Equal(t, "Korrektur", entry.Details["note"])
	require.Contains(t, b.get("/admin/users/ann").body, `id="flash">Credits of ann are booked; available now: 79.5.`)

	p = b.submit("/admin/users/ann", "/admin/users/ann/credits", url.Values{"delta": {"40"}, "bucket": {"purchased"}})
	p.requireSeeOther(t, "/admin/users/ann")
	require.Equal(t, 40*metering.Micro, e.userNow(t, "ann").Live.Purchased)

	// Below zero: the API's 409 sentence, the typed values kept, nothing written.
	p = b.submit("/admin/users/ann", "/admin/users/ann/credits", url.Values{"delta": {"-50"}, "bucket": {"purchased"}, "note": {"zu viel"}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Contains(t, userFormError(t, p), "purchased")
	require.Contains(t, p.body, `name="delta" inputmode="decimal" required value="-50"`)
	require.Contains(t, p.body, `<option value="purchased" selected>`)
	require.Contains(t, p.body, `id="credits-note" name="note" maxlength="1000" value="zu viel"`)
	require.Contains(t, p.body, `id="transfer-note" name="note" maxlength="1000" value=""`, "the other forms stay empty")
	require.Equal(t, 40*metering.Micro, e.userNow(t, "ann").Live.Purchased)

	// Not a number, and no number at all.
	p = b.submit("/admin/users/ann", "/admin/users/ann/credits", url.Values{"delta": {"zehn"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, userFormError(t, p), "delta")
	p = b.submit("/admin/users/ann", "/admin/users/ann/credits", url.Values{"delta": {""}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, userFormError(t, p), "delta")

	// A note that is not UTF-8 is refused here: JSON would have changed it.
	p = b.submit("/admin/users/ann", "/admin/users/ann/credits", url.Values{"delta": {"1"}, "note": {"bad \xff byte"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Equal(t, "note must be text (valid UTF-8).", userFormError(t, p))
	require.Equal(t, userTestCredits(t, "79.5"), e.userNow(t, "ann").Live.Awarded)
}

func TestUserTransferForm(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann", InitialCredits: 100 * metering.Micro})
	f.user(t, metering.UserSpec{Username: "bob"})
	b := e.signedIn(t, adminSecret)

	p := b.submit("/admin/users/ann", "/admin/users/ann/transfer", url.Values{"to": {"bob"}, "amount": {"30,25"}, "note": {"Projektwoche"}})
	p.requireSeeOther(t, "/admin/users/ann")
	require.Equal(t, userTestCredits(t, "69.75"), e.userNow(t, "ann").Live.Awarded)
	require.Equal(t, userTestCredits(t, "30.25"), e.userNow(t, "bob").Live.Awarded)
	require.Contains(t, b.get("/admin/users/ann").body, "The credits are transferred to bob.")
	entry := e.auditOf(t, "ann")[0]
	require.Equal(t, "ops", entry.Actor)
	require.Contains(t, entry.Action, "transfer")

	p = b.submit("/admin/users/ann", "/admin/users/ann/transfer", url.Values{"to": {"bob"}, "amount": {"1000"}})
	require.Equal(t, http.StatusConflict, p.status)
	require.NotEmpty(t, userFormError(t, p))
	require.Contains(t, p.body, `id="transfer-amount" name="amount" inputmode="decimal" required value="1000"`)

	p = b.submit("/admin/users/ann", "/admin/users/ann/transfer", url.Values{"to": {"ghost"}, "amount": {"1"}})
	require.Equal(t, http.StatusNotFound, p.status)
	require.Contains(t, userFormError(t, p), "ghost")
	require.Equal(t, userTestCredits(t, "69.75"), e.userNow(t, "ann").Live.Awarded)
}

func TestUserKeyRevealAndRotate(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	b := e.signedIn(t, adminSecret)

	confirm := b.get("/admin/users/ann/key")
	require.Equal(t, http.StatusOK, confirm.status)
	require.Contains(t, confirm.body, `id="reveal-form"`)
	require.Contains(t, confirm.body, `id="reveal-confirm"`)
	require.Contains(t, confirm.body, "View the key of ann?")
	require.NotContains(t, confirm.body, f.keys["ann"], "the confirmation page shows no key")

	p := b.submit("/admin/users/ann/key", "/admin/users/ann/key", nil)
	require.Equal(t, http.StatusOK, p.status, "the key is in the answer itself, not behind a redirect")
	require.Empty(t, p.header.Get("Location"))
	require.Contains(t, p.body, `<code class="secret" id="api-key">`+f.keys["ann"]+`</code>`)
	require.Contains(t, p.body, `data-copy="api-key"`)
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	entry := e.auditOf(t, "ann")[0]
	require.Equal(t, "user.key.reveal", entry.Action)
	require.Equal(t, "ops", entry.Actor)
	require.NotContains(t, b.get("/admin/users/ann").body, f.keys["ann"], "nor does the next page")

	confirm = b.get("/admin/users/ann/rotate")
	require.Contains(t, confirm.body, `id="rotate-form"`)
	require.Contains(t, confirm.body, `id="rotate-confirm"`)
	p = b.submit("/admin/users/ann/rotate", "/admin/users/ann/rotate", nil)
	require.Equal(t, http.StatusOK, p.status)
	m := regexp.MustCompile(`<code class="secret" id="api-key">([^<]+)</code>`).FindStringSubmatch(p.body)
	require.NotNil(t, m, p.body)
	newKey := m[1]
	require.NotEqual(t, f.keys["ann"], newKey)
	require.Contains(t, p.body, "The old key no longer works.")
	require.Contains(t, p.body, `id="open-user" href="/admin/users/ann"`)
	old, err := e.Engine.Charge(e.ctx, f.keys["ann"], 1, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.KeyRefused, old.Status)
	fresh, err := e.Engine.Charge(e.ctx, newKey, 1, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, fresh.Status)
	entry = e.auditOf(t, "ann")[0]
	require.Equal(t, "user.key.rotate", entry.Action)
	require.Equal(t, "ops", entry.Actor)
	for _, a := range e.auditOf(t, "ann") {
		for _, v := range a.Details {
			s, _ := v.(string)
			require.NotContains(t, s, newKey)
			require.NotContains(t, s, f.keys["ann"])
		}
	}
}

func TestUserKeyRevealRefusedWithoutEncryptionKey(t *testing.T) {
	e := setupWith(t, meteringtest.Options{})
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann"})
	b := e.signedIn(t, adminSecret)
	p := b.submit("/admin/users/ann/key", "/admin/users/ann/key", nil)
	require.Equal(t, http.StatusConflict, p.status)
	require.NotEmpty(t, userFormError(t, p))
	require.Contains(t, p.body, `id="reveal-form"`, "the confirmation page again, with the sentence")
	require.NotContains(t, p.body, `id="api-key"`)
}

func TestUserDeactivateActivateAndDelete(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	f.user(t, metering.UserSpec{Username: "bob", InitialCredits: 10 * metering.Micro})
	b := e.signedIn(t, adminSecret)

	b.submit("/admin/users/ann", "/admin/users/ann/deactivate", nil).requireSeeOther(t, "/admin/users/ann")
	require.False(t, e.userNow(t, "ann").Active)
	p := b.get("/admin/users/ann")
	require.Contains(t, p.body, "User ann is deactivated; its key no longer works.")
	require.Contains(t, p.body, `id="activate-form"`)
	require.NotContains(t, p.body, `id="deactivate-form"`)
	require.Contains(t, p.body, `<span class="badge revoked" id="key-status">`)
	require.Equal(t, "user.deactivate", e.auditOf(t, "ann")[0].Action)
	b.submit("/admin/users/ann", "/admin/users/ann/activate", nil).requireSeeOther(t, "/admin/users/ann")
	require.True(t, e.userNow(t, "ann").Active)

	// A request in flight: the API's 409 on the confirmation page.
	res, err := e.Engine.ChargeTracked(e.ctx, f.keys["ann"], metering.Micro, "POST /v1/chat/completions", time.Hour)
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	confirm := b.get("/admin/users/ann/delete")
	require.Contains(t, confirm.body, `id="delete-form"`)
	require.Contains(t, confirm.body, `id="in-flight">Requests in progress: 1.`)
	require.Contains(t, confirm.body, `id="delete-confirm"`)
	p = b.submit("/admin/users/ann/delete", "/admin/users/ann/delete", nil)
	require.Equal(t, http.StatusConflict, p.status)
	require.Equal(t, `User "ann" has 1 request in flight; try again when it is done.`, userFormError(t, p))
	require.Contains(t, p.body, `id="delete-form"`)
	e.Engine.Release(res.Lease)

	p = b.submit("/admin/users/ann/delete", "/admin/users/ann/delete", nil)
	p.requireSeeOther(t, "/admin/users")
	_, err = e.Engine.GetUser(e.ctx, "ann")
	require.Error(t, err)
	entry := e.auditOf(t, "ann")[0]
	require.Equal(t, "user.delete", entry.Action)
	require.Equal(t, "ops", entry.Actor)
}

func TestUserPageForAViewer(t *testing.T) {
	e := setup(t)
	f := newUserFixture(t, e)
	f.user(t, metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	v := e.signedIn(t, viewerSecret)

	p := v.get("/admin/users/ann")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `id="balances"`)
	for _, id := range []string{"edit-user-form", "credits-form", "transfer-form", "view-key", "rotate-key",
		"deactivate-form", "delete-user"} {
		require.NotContains(t, p.body, `id="`+id+`"`, "no write control for a viewer: %s", id)
	}
	for _, path := range []string{"/admin/users/ann/key", "/admin/users/ann/rotate", "/admin/users/ann/delete"} {
		require.Equal(t, http.StatusForbidden, v.get(path).status, path)
	}
	csrf := v.get("/admin/prices").csrf(t)
	for _, post := range []struct {
		path string
		form url.Values
	}{
		{"/admin/users/ann/credits", url.Values{"delta": {"5"}}},
		{"/admin/users/ann/edit", url.Values{"project": {"teach"}}},
		{"/admin/users/ann/key", nil},
		{"/admin/users/ann/rotate", nil},
		{"/admin/users/ann/deactivate", nil},
		{"/admin/users/ann/delete", nil},
	} {
		form := url.Values{"csrf": {csrf}}
		for k, vs := range post.form {
			form[k] = vs
		}
		p := v.post(post.path, form)
		require.Equal(t, http.StatusForbidden, p.status, post.path)
		require.NotContains(t, p.body, f.keys["ann"])
	}
	u := e.userNow(t, "ann")
	require.Equal(t, 10*metering.Micro, u.Live.Awarded)
	require.True(t, u.Active)
	require.Empty(t, u.ProjectName)
	for _, a := range e.auditOf(t, "ann") {
		require.False(t, strings.HasPrefix(a.Actor, "reports"), "the viewer wrote nothing: %+v", a)
	}
}

// TestUsersNamedLikeScreens: users named new, import or export have pages
// too, at /users/<name>/, and every link to them goes there.
func TestUsersNamedLikeScreens(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	for _, name := range []string{"export", "new", "import"} {
		e.givenUser(t, name, "")
		p := b.get("/admin/users/" + name + "/")
		require.Equal(t, http.StatusOK, p.status, name)
		require.Contains(t, p.body, `id="user-name">`+name+`<`)
		require.Contains(t, b.get("/admin/users?search="+name).body, `href="/admin/users/`+name+`/"`)
		b.submit("/admin/users/"+name+"/", "/admin/users/"+name+"/deactivate", nil).
			requireSeeOther(t, "/admin/users/"+name+"/")
	}
	require.Contains(t, b.get("/admin/users/new").body, `id="create-user-form"`, "the screens keep their paths")
}
