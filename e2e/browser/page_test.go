package browser

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// actionTimeout bounds one browser action. It is generous on purpose:
// the tests never assert how long anything takes.
const actionTimeout = 30 * time.Second

// The two screen sizes every screenshot is taken at.
const (
	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 390, 844
)

// page is one test's browser tab, in a fresh incognito browser context,
// pointed at one gateway.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string // the gateway's URL
}

// newPage opens a tab on the shared gateway.
func newPage(t *testing.T) *page {
	t.Helper()
	return newPageOn(t, theWorld(t).stack.main)
}

// newPageOn opens a tab in a new incognito context on gw.
func newPageOn(t *testing.T, gw *gateway) *page {
	t.Helper()
	w := theWorld(t)
	ctx, cancel := chromedp.NewContext(w.browser, chromedp.WithNewBrowserContext())
	// The first action opens the tab and binds it to ctx, not to a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(desktopWidth, desktopHeight)); err != nil {
		cancel()
		t.Fatalf("open a browser tab: %v", err)
	}
	p := &page{t: t, ctx: ctx, base: gw.URL}
	t.Cleanup(func() {
		if t.Failed() {
			p.explainFailure()
		}
		cancel()
	})
	return p
}

// explainFailure logs where the tab was and what it showed, and keeps a
// screenshot, so that a failure says what the browser saw.
func (p *page) explainFailure() {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		p.t.Logf("the browser's location is unknown: %v", err)
		return
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		body = err.Error()
	}
	p.t.Logf("the browser was at %s, showing:\n%s", loc, tail(body, 3000))
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p.save("FAILED-"+p.t.Name(), buf)
	} else {
		p.t.Logf("no screenshot of the failure: %v", err)
	}
}

// run runs actions with the action timeout, failing the test on error.
func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its result.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// goTo opens a path of the gateway and returns the answer's HTTP status.
func (p *page) goTo(path string) int {
	p.t.Helper()
	return int(p.navigateResponse(path).Status)
}

// navigateResponse opens a path and returns the browser's view of the
// answer (status and headers).
func (p *page) navigateResponse(path string) *network.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(p.base+path))
	if err != nil {
		p.t.Fatalf("open %s: %v", path, err)
	}
	return resp
}

// path is the path (and query) the tab shows now.
func (p *page) path() string {
	p.t.Helper()
	return strings.TrimPrefix(eval[string](p, `location.pathname + location.search`), p.base)
}

// has reports whether the page has an element matching sel now. Pages are
// rendered on the server, so after a navigation there is nothing to wait for.
func (p *page) has(sel string) bool {
	p.t.Helper()
	return eval[bool](p, `document.querySelector(`+js(sel)+`) !== null`)
}

// count is how many elements match sel.
func (p *page) count(sel string) int {
	p.t.Helper()
	return eval[int](p, `document.querySelectorAll(`+js(sel)+`).length`)
}

// need fails the test at once when sel is missing: a screen that does not
// follow the element-id contract fails fast, naming the id and the page.
func (p *page) need(sel string) {
	p.t.Helper()
	if !p.has(sel) {
		p.t.Fatalf("no element %s on %s (see the element-id contract in the console brief)", sel, p.path())
	}
}

// text is the visible text of the first element matching sel, trimmed.
func (p *page) text(sel string) string {
	p.t.Helper()
	p.need(sel)
	return strings.TrimSpace(eval[string](p, `document.querySelector(`+js(sel)+`).innerText`))
}

// texts is the visible text of every element matching sel.
func (p *page) texts(sel string) []string {
	p.t.Helper()
	return eval[[]string](p, `Array.from(document.querySelectorAll(`+js(sel)+`), e => e.innerText.trim())`)
}

// attr is an attribute of the first element matching sel ("" when absent).
func (p *page) attr(sel, name string) string {
	p.t.Helper()
	p.need(sel)
	return eval[string](p, `document.querySelector(`+js(sel)+`).getAttribute(`+js(name)+`) || ""`)
}

// attrs is an attribute of every element matching sel, in page order.
func (p *page) attrs(sel, name string) []string {
	p.t.Helper()
	return eval[[]string](p, `Array.from(document.querySelectorAll(`+js(sel)+`), e => e.getAttribute(`+js(name)+`) || "")`)
}

// disabled reports whether a form control is disabled.
func (p *page) disabled(sel string) bool {
	p.t.Helper()
	p.need(sel)
	return eval[bool](p, `document.querySelector(`+js(sel)+`).disabled`)
}

// value is the current value of a form field.
func (p *page) value(sel string) string {
	p.t.Helper()
	p.need(sel)
	return eval[string](p, `document.querySelector(`+js(sel)+`).value`)
}

// bodyText is the whole page's visible text.
func (p *page) bodyText() string {
	p.t.Helper()
	return eval[string](p, `document.body.innerText`)
}

// fill sets a form field's value as typing would leave it: a text,
// number or date input, a textarea, or a select (by option value; a value
// no option has fails the test). Hidden inputs can be set too.
func (p *page) fill(sel, value string) {
	p.t.Helper()
	p.need(sel)
	got := eval[string](p, `(() => {
		const e = document.querySelector(`+js(sel)+`);
		e.value = `+js(value)+`;
		e.dispatchEvent(new Event("input", {bubbles: true}));
		e.dispatchEvent(new Event("change", {bubbles: true}));
		return e.value;
	})()`)
	if got != value {
		p.t.Fatalf("%s on %s does not take the value %q (it holds %q): for a select, no option has that value", sel, p.path(), value, got)
	}
}

// check sets a checkbox on or off.
func (p *page) check(sel string, on bool) {
	p.t.Helper()
	p.need(sel)
	if eval[bool](p, `document.querySelector(`+js(sel)+`).checked`) != on {
		p.run("click "+sel, chromedp.Click(chromedp.CSS(sel)))
	}
}

// click clicks sel, waits for the page it leads to and returns that
// answer's HTTP status (a form POST that redirects gives the final page's).
func (p *page) click(sel string) int {
	p.t.Helper()
	p.need(sel)
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("click %s on %s: %v", sel, p.path(), err)
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// upload puts a file into a file input.
func (p *page) upload(sel, file string) {
	p.t.Helper()
	p.need(sel)
	p.run("upload into "+sel, chromedp.SetUploadFiles(chromedp.CSS(sel), []string{file}))
}

// submitForged builds a form in the page that POSTs fields (and the
// session's CSRF token, taken from the sign-out form) to path, submits it
// and returns the answer's status: a request the page's own controls
// would not send.
func (p *page) submitForged(path string, fields map[string]string) int {
	p.t.Helper()
	b, _ := json.Marshal(fields)
	build := `(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = ` + js(path) + `;
		f.id = "forged-form";
		const fields = ` + string(b) + `;
		const csrf = document.querySelector('input[name="csrf"]');
		if (csrf) { fields.csrf = csrf.value; }
		for (const [k, v] of Object.entries(fields)) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = k; i.value = v;
			f.appendChild(i);
		}
		const b = document.createElement("button");
		b.type = "submit"; b.id = "forged-submit"; b.textContent = "forged";
		f.appendChild(b);
		document.body.prepend(f);
		return true;
	})()`
	eval[bool](p, build)
	return p.click("#forged-submit")
}

// fetched is what fetch() in the page got: the browser's own request,
// with the session's cookies.
type fetched struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType"`
	Disposition string `json:"disposition"`
	Body        string `json:"body"`
}

// fetch requests a URL from inside the page (for downloads, which do not
// navigate).
func (p *page) fetch(href string) fetched {
	p.t.Helper()
	return eval[fetched](p, `fetch(`+js(href)+`, {credentials: "same-origin"}).then(async r => ({
		status: r.status,
		contentType: r.headers.get("Content-Type") || "",
		disposition: r.headers.get("Content-Disposition") || "",
		body: await r.text()}))`)
}

// signIn signs in with token and expects to land on the users page.
func (p *page) signIn(token string) {
	p.t.Helper()
	p.goTo("/admin/login")
	p.fill("#token", token)
	p.click("#signin")
	if got := p.path(); !strings.HasPrefix(got, "/admin/users") {
		p.t.Fatalf("after signing in the browser is at %s, not the users page; it shows:\n%s", got, tail(p.bodyText(), 1500))
	}
}

// screenshot saves the page at the desktop and the phone size, as
// <name>-desktop.png and <name>-phone.png.
func (p *page) screenshot(name string) {
	p.t.Helper()
	for _, size := range []struct {
		label         string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{
		{"desktop", desktopWidth, desktopHeight, nil},
		{"phone", phoneWidth, phoneHeight, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}},
	} {
		ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...)); err != nil {
			cancel()
			p.t.Fatalf("screenshot %s: %v", name, err)
		}
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			p.t.Fatalf("screenshot %s: %v", name, err)
		}
		p.save(name+"-"+size.label, buf)
	}
	p.run("back to the desktop size", chromedp.EmulateViewport(desktopWidth, desktopHeight))
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// save writes a PNG under $TOLLGATE_SCREENSHOTS or ./test-output/screenshots.
func (p *page) save(name string, png []byte) {
	dir := os.Getenv("TOLLGATE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("test-output", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Errorf("screenshot directory: %v", err)
		return
	}
	file := filepath.Join(dir, unsafeFileChars.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Errorf("save screenshot: %v", err)
	}
}
