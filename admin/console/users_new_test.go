package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestCreateUserShowsTheKeyOnce(t *testing.T) {
	e := setup(t)
	e.makeProject(t, "teachers")
	b := e.signedIn(t, adminSecret)

	form := b.get("/admin/users/new")
	require.Equal(t, http.StatusOK, form.status)
	for _, id := range []string{`id="create-user-form"`, `id="create-user"`, `name="username"`, `name="initial_credits"`,
		`name="purchased"`, `name="partner" value="true"`, `name="monthly_grant"`, `name="key_expires_at" type="date"`,
		`<option value="teachers">teachers</option>`} {
		require.Contains(t, form.body, id)
	}

	expires := time.Now().UTC().AddDate(0, 0, 30)
	day := expires.Format(time.DateOnly)
	p := b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"dana"}, "project": {"teachers"},
		"initial_credits": {"12,5"}, "purchased": {"3"}, "partner": {"true"}, "monthly_grant": {"10"}, "key_expires_at": {day}})
	require.Equal(t, http.StatusOK, p.status, "the key is shown in the answer itself, not after a redirect: %s", p.body)
	require.Empty(t, p.header.Get("Location"))
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	m := shownKey.FindStringSubmatch(p.body)
	require.NotNil(t, m, p.body)
	key := m[1]
	require.True(t, strings.HasPrefix(key, "tg_"), key)
	require.Contains(t, p.body, `data-copy="api-key"`)
	require.Contains(t, p.body, `id="open-user" href="/admin/users/dana"`)
	require.Contains(t, p.body, "shown only this once")

	usable, err := e.Engine.KeyUsable(e.ctx, key)
	require.NoError(t, err)
	require.True(t, usable)
	u, err := e.Engine.GetUser(e.ctx, "dana")
	require.NoError(t, err)
	require.Equal(t, "teachers", u.ProjectName)
	require.Equal(t, 12*metering.Micro+500_000, u.Awarded, "the German decimal comma is read")
	require.Equal(t, 3*metering.Micro, u.Purchased)
	require.Equal(t, 10*metering.Micro, u.MonthlyGrant)
	require.True(t, u.Partner)
	require.NotNil(t, u.Key.ExpiresAt)
	wantExpiry, _ := time.Parse(time.DateOnly, day)
	require.True(t, wantExpiry.Equal(*u.Key.ExpiresAt), "the key expires at the start of %s UTC, not %s", day, u.Key.ExpiresAt)
	audit := e.auditOf(t, "dana")
	var actions []string
	for _, a := range audit {
		require.Equal(t, "ops", a.Actor, "every write is the signed-in token's")
		actions = append(actions, a.Action)
	}
	require.Contains(t, actions, "user.create")

	// The key is in no later page: no flash, no redirect carried it.
	next := b.get("/admin/users")
	require.NotContains(t, next.body, key)
	require.Contains(t, next.body, `data-user="dana"`)
}

func TestCreateUserFormErrorsShowTheAPIsSentence(t *testing.T) {
	e := setup(t)
	e.makeUser(t, "ann", "", 0)
	b := e.signedIn(t, adminSecret)

	// A taken username: 409 with the API's sentence, what was typed kept.
	want := e.usersAPIRefusal(t, http.MethodPost, "/users", "application/json", `{"username":"ann"}`)
	p := b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"ann"}, "initial_credits": {"7,25"}, "partner": {"true"}})
	require.Equal(t, http.StatusConflict, p.status, p.body)
	require.Equal(t, want, p.formError())
	require.Contains(t, p.body, `name="username" value="ann"`)
	require.Contains(t, p.body, `name="initial_credits" inputmode="decimal" value="7,25"`)
	require.Contains(t, p.body, `name="partner" value="true" checked`)
	require.NotRegexp(t, shownKey, p.body)

	// An expiry day that has begun: the API says it must be in the future.
	today := time.Now().UTC().Format(time.DateOnly)
	want = e.usersAPIRefusal(t, http.MethodPost, "/users", "application/json", `{"username":"ben","key_expires_at":"`+today+`T00:00:00Z"}`)
	p = b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"ben"}, "key_expires_at": {today}})
	require.Equal(t, http.StatusBadRequest, p.status, p.body)
	require.Equal(t, want, p.formError())
	require.Contains(t, p.formError(), "key_expires_at")

	// A date that is no date is passed on for the API to name.
	p = b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"ben"}, "key_expires_at": {"next friday"}})
	require.Equal(t, http.StatusBadRequest, p.status, p.body)
	require.Contains(t, p.formError(), "key_expires_at")

	// An invalid username and a bad amount, each named by the API.
	want = e.usersAPIRefusal(t, http.MethodPost, "/users", "application/json", `{"username":"Ann Lee"}`)
	p = b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"Ann Lee"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Equal(t, want, p.formError())
	p = b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"ben"}, "purchased": {"lots"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.formError(), "purchased")

	_, err := e.Engine.GetUser(e.ctx, "ben")
	require.Error(t, err, "no refused form created a user")
}

func TestCreateUserIsRefusedToAViewer(t *testing.T) {
	e := setup(t)
	admin := e.signedIn(t, adminSecret)
	csrfOfAdmin := admin.get("/admin/users/new").csrf(t)
	b := e.signedIn(t, viewerSecret)
	p := b.get("/admin/users/new")
	require.Equal(t, http.StatusForbidden, p.status)
	require.NotContains(t, p.body, `id="create-user-form"`)
	p = b.submit("/admin/users", "/admin/users/new", url.Values{"username": {"eve"}})
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, p.body, "You are signed in as a viewer")
	// Another session's token does not help either.
	p = b.post("/admin/users/new", url.Values{"username": {"eve"}, "csrf": {csrfOfAdmin}})
	require.Equal(t, http.StatusForbidden, p.status)
	_, err := e.Engine.GetUser(e.ctx, "eve")
	require.Error(t, err)
}

func TestCreatedKeyPageInGerman(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	b.lang = "de"
	p := b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"jo"}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "<h1>Benutzer angelegt</h1>")
	require.Contains(t, p.body, "Das ist der API-Schlüssel von jo. Er wird nur dieses eine Mal angezeigt")
	require.Contains(t, p.body, "jo öffnen")
}
