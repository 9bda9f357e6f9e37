package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSignInAndOut(t *testing.T) {
	e := setup(t)
	b := e.browser(t)

	// Without a session every page sends the visitor to sign in, and back.
	p := b.get("/admin/prices")
	p.requireSeeOther(t, "/admin/login?next=%2Fadmin%2Fprices")

	form := b.get("/admin/login?next=%2Fadmin%2Fprices")
	require.Equal(t, http.StatusOK, form.status)
	require.Contains(t, form.body, `name="token"`)
	p = b.post("/admin/login", url.Values{"csrf": {form.csrf(t)}, "token": {adminSecret}, "next": {"/admin/prices"}})
	p.requireSeeOther(t, "/admin/prices")
	var session *http.Cookie
	for _, c := range b.http.Jar.Cookies(mustURL(t, e.srv.URL+"/admin/")) {
		if c.Name == "tollgate_session" {
			session = c
		}
	}
	require.NotNil(t, session, "signing in sets the session cookie")
	require.NotContains(t, p.header.Get("Set-Cookie"), adminSecret)
	setCookie := strings.Join(p.header.Values("Set-Cookie"), "\n")
	require.Contains(t, setCookie, "HttpOnly")
	require.Contains(t, setCookie, "SameSite=Strict")
	require.Contains(t, setCookie, "Path=/admin")

	p = b.get("/admin/prices")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `id="signed-in-as">ops`)

	p = b.submit("/admin/prices", "/admin/logout", nil)
	p.requireSeeOther(t, "/admin/login")
	b.get("/admin/prices").requireSeeOther(t, "/admin/login?next=%2Fadmin%2Fprices")

	// The old session id is worth nothing after sign-out, even replayed.
	replay := e.browser(t)
	replay.http.Jar.SetCookies(mustURL(t, e.srv.URL+"/admin/"), []*http.Cookie{session})
	replay.get("/admin/prices").requireSeeOther(t, "/admin/login?next=%2Fadmin%2Fprices")
}

func TestSignInRefusesWrongTokensAndSlowsDownGuessing(t *testing.T) {
	e := setup(t)
	b := e.browser(t)
	for i := 0; i < 5; i++ {
		p := b.submit("/admin/login", "/admin/login", url.Values{"token": {"wrong-token"}})
		require.Equal(t, http.StatusUnauthorized, p.status)
		require.Contains(t, p.body, "That token is not valid.")
	}
	// The sixth failure locks the address out: even the right token is
	// not checked until the lock passes.
	p := b.submit("/admin/login", "/admin/login", url.Values{"token": {"wrong-token"}})
	require.Equal(t, http.StatusUnauthorized, p.status)
	p = b.submit("/admin/login", "/admin/login", url.Values{"token": {adminSecret}})
	require.Equal(t, http.StatusTooManyRequests, p.status)
	require.Contains(t, p.body, "Try again in 30 seconds.")

	e.clock.Advance(31 * time.Second)
	b.signIn(adminSecret)
}

func TestSignInNeedsItsCSRFToken(t *testing.T) {
	e := setup(t)
	b := e.browser(t)
	b.get("/admin/login")
	p := b.post("/admin/login", url.Values{"token": {adminSecret}})
	require.Equal(t, http.StatusForbidden, p.status)
	p = b.post("/admin/login", url.Values{"token": {adminSecret}, "csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, p.status)
}

func TestFormsNeedTheSessionsCSRFToken(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	for _, csrf := range []string{"", "forged"} {
		p := b.post("/admin/prices", url.Values{"csrf": {csrf}, "model": {"m1"}, "per_request": {"1"}})
		require.Equal(t, http.StatusForbidden, p.status)
		require.Contains(t, p.body, "did not come from this console")
	}
	// Another session's token does not do either.
	other := e.signedIn(t, adminSecret)
	foreign := other.get("/admin/prices").csrf(t)
	p := b.post("/admin/prices", url.Values{"csrf": {foreign}, "model": {"m1"}, "per_request": {"1"}})
	require.Equal(t, http.StatusForbidden, p.status)
	_, err := e.Engine.GetPrice(e.ctx, "m1")
	require.Error(t, err, "a refused form wrote nothing")
}

func TestSessionsExpire(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	e.clock.Advance(29 * time.Minute)
	require.Equal(t, http.StatusOK, b.get("/admin/prices").status, "used within the idle time")
	e.clock.Advance(29 * time.Minute)
	require.Equal(t, http.StatusOK, b.get("/admin/prices").status, "each use restarts the idle time")
	e.clock.Advance(30 * time.Minute)
	b.get("/admin/prices").requireSeeOther(t, "/admin/login?next=%2Fadmin%2Fprices")

	// However busy, a session ends 12 hours after sign-in.
	b.signIn(adminSecret)
	for i := 0; i < 24; i++ {
		e.clock.Advance(29 * time.Minute)
		require.Equal(t, http.StatusOK, b.get("/admin/prices").status)
	}
	e.clock.Advance(29 * time.Minute)
	b.get("/admin/prices").requireSeeOther(t, "/admin/login?next=%2Fadmin%2Fprices")
	// A form posted after expiry says the session ended.
	p := b.post("/admin/prices", url.Values{"csrf": {"x"}})
	p.requireSeeOther(t, "/admin/login?expired=1")
	require.Contains(t, b.get("/admin/login?expired=1").body, "Your session has ended.")
}

func TestSecurityHeaders(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	for _, path := range []string{"/admin/login", "/admin/prices", "/admin/nowhere"} {
		p := b.get(path)
		csp := p.header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'", path)
		require.NotContains(t, csp, "unsafe-inline", path)
		require.Contains(t, csp, "frame-ancestors 'none'", path)
		require.Equal(t, "DENY", p.header.Get("X-Frame-Options"), path)
		require.Equal(t, "no-referrer", p.header.Get("Referrer-Policy"), path)
		require.Equal(t, "no-store", p.header.Get("Cache-Control"), path)
		require.NotContains(t, p.body, "<script>", "no inline script: %s", path)
		require.NotContains(t, p.body, " style=", "no inline style: %s", path)
	}
	require.Equal(t, http.StatusNotFound, b.get("/admin/nowhere").status)
}

func TestOpenRedirectRefused(t *testing.T) {
	e := setup(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/admin/", "/\\evil.example", "/elsewhere"} {
		b := e.browser(t)
		p := b.submit("/admin/login", "/admin/login", url.Values{"token": {adminSecret}, "next": {next}})
		p.requireSeeOther(t, "/admin/users")
	}
}

func TestViewerCannotWrite(t *testing.T) {
	e := setup(t)
	admin := e.signedIn(t, adminSecret)
	admin.submit("/admin/prices", "/admin/prices", url.Values{"model": {"m1"}, "per_request": {"1"}}).
		requireSeeOther(t, "/admin/prices")

	v := e.signedIn(t, viewerSecret)
	p := v.get("/admin/prices")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "m1")
	require.NotContains(t, p.body, `id="price-form"`, "no write controls for a viewer")
	require.NotContains(t, p.body, "/admin/prices/delete")
	// Whatever a viewer posts is refused, with its own valid CSRF token.
	p = v.post("/admin/prices/delete", url.Values{"csrf": {p.csrf(t)}, "model": {"m1"}})
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, p.body, "viewer")
	_, err := e.Engine.GetPrice(e.ctx, "m1")
	require.NoError(t, err, "the price is still there")
}

func TestLanguageFollowsTheBrowserAndTheSwitch(t *testing.T) {
	e := setup(t)
	b := e.browser(t)
	b.lang = "de-DE,de;q=0.9,en;q=0.8"
	require.Contains(t, b.get("/admin/login").body, "Bei Tollgate anmelden")
	b.lang = "fr-FR, en;q=0.5"
	require.Contains(t, b.get("/admin/login").body, "Sign in to Tollgate")

	p := b.get("/admin/lang/de?back=%2Fadmin%2Flogin")
	p.requireSeeOther(t, "/admin/login")
	require.Contains(t, b.get("/admin/login").body, "Bei Tollgate anmelden", "the choice wins over the browser's")
	b.get("/admin/lang/de?back=https%3A%2F%2Fevil.example").requireSeeOther(t, "/admin/users")
	require.Equal(t, http.StatusNotFound, b.get("/admin/lang/xx").status)
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
