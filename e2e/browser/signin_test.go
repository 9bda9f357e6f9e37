package browser

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
)

// A visitor without a session is sent to the sign-in page; a wrong token
// is refused with #form-error; the admin token leads to the users page;
// signing out ends the session.
func TestSignInAndOut(t *testing.T) {
	p := newPage(t)
	p.goTo("/admin/prices")
	if got := p.path(); !strings.HasPrefix(got, "/admin/login") {
		t.Fatalf("without a session /admin/prices led to %s, not the sign-in page", got)
	}
	p.need("#signin-form")
	p.screenshot("login")

	p.fill("#token", "not-the-token")
	if status := p.click("#signin"); status != http.StatusUnauthorized {
		t.Errorf("a wrong token answered HTTP %d, want 401", status)
	}
	if msg := p.text("#form-error"); !strings.Contains(msg, "not valid") {
		t.Errorf("#form-error says %q, want that the token is not valid", msg)
	}

	p.signIn(adminToken)
	if who := p.text("#signed-in-as"); !strings.Contains(who, "admin") {
		t.Errorf("#signed-in-as says %q, want the admin token's name", who)
	}
	p.click("#logout")
	if got := p.path(); !strings.HasPrefix(got, "/admin/login") {
		t.Fatalf("signing out led to %s, not the sign-in page", got)
	}
	p.goTo("/admin/prices")
	if got := p.path(); !strings.HasPrefix(got, "/admin/login") {
		t.Errorf("after signing out /admin/prices led to %s, not the sign-in page", got)
	}
}

// A form whose CSRF token was tampered with is refused with 403 and
// changes nothing.
func TestCSRFRefused(t *testing.T) {
	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/prices")
	model := uniqueName("csrf-model")
	p.fill("#price-form #model", model)
	p.fill("#price-form #per_request", "1")
	p.fill(`#price-form input[name="csrf"]`, "forged-by-another-site")
	if status := p.click("#price-save"); status != http.StatusForbidden {
		t.Errorf("a forged CSRF token answered HTTP %d, want 403", status)
	}
	if body := p.bodyText(); !strings.Contains(body, "did not come from this console") {
		t.Errorf("the refusal page does not say the form did not come from this console:\n%s", body)
	}
	if got := api(t, "GET", "/prices/"+model, nil, nil); got != http.StatusNotFound {
		t.Errorf("after the refused form GET /prices/%s is HTTP %d, want 404: the price must not exist", model, got)
	}
}

// A session unused for longer than session_idle ends: the next page is
// the sign-in page. A second gateway runs the quick-start Caddyfile with
// session_idle 3s added.
func TestSessionExpiry(t *testing.T) {
	gw := theWorld(t).stack.idleGateway(t)
	p := newPageOn(t, gw)
	p.signIn(adminToken)
	time.Sleep(5 * time.Second) // longer than session_idle; only the outcome after it is asserted
	p.goTo("/admin/prices")
	if got := p.path(); !strings.HasPrefix(got, "/admin/login") {
		t.Fatalf("after 5 s idle (session_idle 3s) /admin/prices led to %s, not the sign-in page", got)
	}
	p.need("#signin-form")
}

// The English/German switch turns the page German and back.
func TestLanguageSwitch(t *testing.T) {
	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/prices")
	if h := p.text("h1"); h != "Prices" {
		t.Fatalf("the prices page's heading is %q, want Prices in English first", h)
	}
	p.click(`.langs a[lang="de"]`)
	if got := p.path(); !strings.HasPrefix(got, "/admin/prices") {
		t.Errorf("the language switch led to %s, not back to the prices page", got)
	}
	if h := p.text("h1"); h != "Preise" {
		t.Errorf("after switching to German the heading is %q, want Preise", h)
	}
	if lang := p.attr("html", "lang"); lang != "de" {
		t.Errorf(`<html lang=%q>, want "de"`, lang)
	}
	if out := p.text("#logout"); out != "Abmelden" {
		t.Errorf("the sign-out button says %q, want Abmelden", out)
	}
	p.screenshot("prices-de")
	// The choice belongs to the session: other screens are German too.
	p.goTo("/admin/users")
	if h := p.text("h1"); h != "Benutzer" {
		t.Errorf("the users page in German is headed %q, want Benutzer", h)
	}
	p.goTo("/admin/prices")
	p.click(`.langs a[lang="en"]`)
	if h := p.text("h1"); h != "Prices" {
		t.Errorf("after switching back to English the heading is %q, want Prices", h)
	}
}

// The browser receives the console's security headers.
func TestSecurityHeaders(t *testing.T) {
	p := newPage(t)
	resp := p.navigateResponse("/admin/login")
	want := map[string]string{
		"Content-Security-Policy":    "default-src 'none'",
		"X-Frame-Options":            "DENY",
		"Referrer-Policy":            "no-referrer",
		"X-Content-Type-Options":     "nosniff",
		"Cross-Origin-Opener-Policy": "same-origin",
		"Cache-Control":              "no-store",
	}
	for name, part := range want {
		got := header(resp, name)
		if !strings.Contains(got, part) {
			t.Errorf("%s: %q, want it to contain %q", name, got, part)
		}
	}
	if csp := header(resp, "Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
		t.Errorf("the CSP allows inline code: %s", csp)
	}
}

// header finds a response header case-insensitively (the browser reports
// them as the server spelled them, or in lower case under HTTP/2).
func header(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			if s, ok := v.(string); ok {
				return s
			}
		}
	}
	return ""
}
