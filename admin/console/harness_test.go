package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/console"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

const (
	adminSecret  = "console-admin-secret-0123456789"
	viewerSecret = "console-viewer-secret-0123456789"
)

// env is one test's world: isolated stores and engine, the admin API and
// the console on one loopback server, as the Caddy module serves them.
type env struct {
	*meteringtest.Bundle
	srv   *httptest.Server
	ctx   context.Context
	clock *testClock
}

// testClock is the console's clock, moved by tests (session expiry,
// sign-in throttle) instead of sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func setup(t testing.TB) *env {
	t.Helper()
	return setupWith(t, meteringtest.Options{KeyEncryptionKey: testKEK()})
}

func setupWith(t testing.TB, opts meteringtest.Options) *env {
	t.Helper()
	b := meteringtest.New(t, opts)
	api, err := admin.New(b.Engine, admin.Config{Logger: zap.NewNop(), Tokens: []admin.Token{
		{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin},
		{Name: "reports", Secret: viewerSecret, Role: admin.RoleViewer},
	}})
	require.NoError(t, err)
	clock := &testClock{now: time.Now()}
	con, err := console.New(console.Config{API: api, Now: clock.Now, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/admin/v1/", api)
	mux.Handle("/", con)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{Bundle: b, srv: srv, ctx: context.Background(), clock: clock}
}

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so tests see each 303 and where it points.
type browser struct {
	t    testing.TB
	e    *env
	http *http.Client
	lang string
}

func (e *env) browser(t testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, e: e, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is an answer: status, headers and the body as text.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	resp, err := b.http.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return &page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func (b *browser) get(path string) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

// post sends a form as a browser would (no CSRF token added: see submit).
func (b *browser) post(path string, form url.Values) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// submit loads the page at from, takes the CSRF token of its forms and
// posts form to action with it, as a browser submitting that page would.
func (b *browser) submit(from, action string, form url.Values) *page {
	b.t.Helper()
	p := b.get(from)
	require.Equal(b.t, http.StatusOK, p.status, "GET %s: %s", from, p.body)
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", p.csrf(b.t))
	return b.post(action, form)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p *page) csrf(t testing.TB) string {
	m := csrfInput.FindStringSubmatch(p.body)
	require.NotNil(t, m, "the page has no form with a csrf field")
	return m[1]
}

// signIn signs the browser in with secret and checks it lands on the users page.
func (b *browser) signIn(secret string) {
	b.t.Helper()
	p := b.submit("/admin/login", "/admin/login", url.Values{"token": {secret}})
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
	require.Equal(b.t, "/admin/users", p.header.Get("Location"))
}

func (e *env) signedIn(t testing.TB, secret string) *browser {
	b := e.browser(t)
	b.signIn(secret)
	return b
}

// requireSeeOther checks a form's answer is a redirect to location.
func (p *page) requireSeeOther(t testing.TB, location string) {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, location, p.header.Get("Location"))
}

// testKEK is a fixed key-encryption key, so keys can be revealed.
func testKEK() []byte { return []byte("0123456789abcdef0123456789abcdef") }
