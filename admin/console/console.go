// Package console serves the admin console: server-rendered HTML pages
// under /admin/ for the people who run Tollgate day to day (users,
// projects, keys, credits, prices, usage, audit), and the public page
// where an invite link is claimed.
//
// The console holds no business logic. Every read and write is a call to
// the admin API handler, in process, with the signed-in token, so the
// API's validation, roles, audit entries and messages are the console's
// too (apicall.go). What the console adds is what a browser needs:
// sessions instead of bearer tokens (session.go, login.go), CSRF tokens
// on every form (csrf.go), security headers (headers.go), English and
// German (i18n.go, catalog.go) and SVG charts drawn on the server
// (chart.go). Every page works without JavaScript; console.js only adds
// copy buttons and confirmation dialogs.
package console

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Defaults of Config.
const (
	DefaultBasePath       = "/admin"
	DefaultAPIBasePath    = "/admin/v1"
	DefaultClaimPath      = "/claim"
	DefaultSessionIdle    = 30 * time.Minute
	DefaultSessionMaxAge  = 12 * time.Hour
	DefaultMaxUploadBytes = 16 << 20
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the console.
type Config struct {
	// API is the admin API handler (admin.New) the console calls.
	API http.Handler
	// BasePath is where the console's pages live. Default /admin.
	BasePath string
	// APIBasePath is where API routes live, as the API handler expects
	// them in the request path. Default /admin/v1.
	APIBasePath string
	// ClaimPath is where invite links are opened. Default /claim.
	ClaimPath string
	// SessionIdle ends a session not used for this long. Default 30 min.
	SessionIdle time.Duration
	// SessionMaxAge ends a session this long after sign-in, used or not.
	// Default 12 h.
	SessionMaxAge time.Duration
	// MaxUploadBytes bounds an uploaded CSV file. Default 16 MiB.
	MaxUploadBytes int64
	// ClientAddress returns the address failed sign-ins are counted
	// against. Default: the host of r.RemoteAddr. Behind a proxy, the
	// Caddy module passes Caddy's client IP (which honours trusted_proxies).
	ClientAddress func(r *http.Request) string
	// Logger receives internal errors; tokens, keys and form values are
	// never logged. Default: no logging.
	Logger *zap.Logger
	// Now is the clock; tests replace it. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.BasePath == "" {
		c.BasePath = DefaultBasePath
	}
	if c.APIBasePath == "" {
		c.APIBasePath = DefaultAPIBasePath
	}
	if c.ClaimPath == "" {
		c.ClaimPath = DefaultClaimPath
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.SessionMaxAge == 0 {
		c.SessionMaxAge = DefaultSessionMaxAge
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.ClientAddress == nil {
		c.ClientAddress = remoteHost
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.BasePath = strings.TrimSuffix(c.BasePath, "/")
	c.APIBasePath = strings.TrimSuffix(c.APIBasePath, "/")
	c.ClaimPath = strings.TrimSuffix(c.ClaimPath, "/")
	return c
}

func (c Config) validate() error {
	if c.API == nil {
		return errors.New("console: the admin API handler is required")
	}
	for name, p := range map[string]string{"base_path": c.BasePath, "api_base_path": c.APIBasePath, "claim_path": c.ClaimPath} {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "{} \t\r\n?#") {
			return fmt.Errorf("console %s: must be a plain path starting with /, got %q", name, p)
		}
	}
	if c.SessionIdle < 0 || c.SessionMaxAge < 0 || c.MaxUploadBytes < 0 {
		return errors.New("console: session times and upload limit must not be negative")
	}
	return nil
}

// Console is the console's http.Handler.
type Console struct {
	cfg      Config
	log      *zap.Logger
	api      http.Handler
	mux      *http.ServeMux
	pages    *pages
	sessions *sessionStore
	throttle *signInThrottle
	status   *statusCache
	static   http.Handler
}

// page is one route of the console: a handler that gets the signed-in
// session (nil on public pages) and renders or redirects.
type page struct {
	method string
	path   string // below BasePath, or below ClaimPath when claim is set
	h      func(w http.ResponseWriter, r *http.Request, s *session) error
	// public pages need no session (sign-in, claim).
	public bool
	// write: a POST that changes something; only an admin session may
	// send it, whatever the form holds.
	write bool
	claim bool
	// upload: a multipart form with a file, bounded by MaxUploadBytes
	// (other forms by maxFormBytes).
	upload bool
}

// New checks cfg and returns the console.
func New(cfg Config) (*Console, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tpl, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: cfg.Logger, api: cfg.API, mux: http.NewServeMux(), pages: tpl,
		sessions: newSessionStore(cfg.SessionIdle, cfg.SessionMaxAge, cfg.Now),
		throttle: newSignInThrottle(cfg.Now)}
	c.status = newStatusCache(c, cfg.Now)
	c.static = http.StripPrefix(cfg.BasePath+"/static/", http.FileServerFS(static))
	c.mux.Handle("GET "+cfg.BasePath+"/static/", c.static)
	for _, p := range c.routes() {
		prefix := cfg.BasePath
		if p.claim {
			prefix = cfg.ClaimPath
		}
		c.mux.Handle(p.method+" "+prefix+p.path, c.wrap(p))
	}
	return c, nil
}

// routes is every page, one table per screen.
func (c *Console) routes() []page {
	var all []page
	for _, table := range [][]page{c.signInPages(), c.userListPages(), c.userCreatePages(), c.importPages(),
		c.userPages(), c.inviteRoutes(), c.projectPages(), c.pricePages(), c.usagePages(), c.auditPages(), c.claimPages()} {
		all = append(all, table...)
	}
	return all
}

// Handles reports whether path is the console's (its pages, its static
// files or the claim pages), for a handler that also serves the API.
func (c *Console) Handles(path string) bool {
	return path == c.cfg.BasePath || strings.HasPrefix(path, c.cfg.BasePath+"/") ||
		strings.HasPrefix(path, c.cfg.ClaimPath+"/")
}

// ServeHTTP sets the security headers and routes the request.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.URL.Path == c.cfg.BasePath || r.URL.Path == c.cfg.BasePath+"/" {
		http.Redirect(w, r, c.cfg.BasePath+"/users", http.StatusSeeOther)
		return
	}
	// mux.Handler only finds the route (it sets no path values); the mux
	// itself serves it.
	if _, pattern := c.mux.Handler(r); pattern == "" {
		c.renderError(w, r, c.sessions.get(r), http.StatusNotFound, "error.not_found")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// wrap checks the session, the role and the CSRF token before a page
// runs, and renders what it returns as an error page.
func (c *Console) wrap(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if !p.public {
			s = c.sessions.get(r)
			if s == nil {
				c.redirectToSignIn(w, r)
				return
			}
		}
		if r.Method == http.MethodPost {
			// Bound the body before the form is read (checkCSRF reads it).
			limit := int64(maxFormBytes)
			if p.upload {
				limit = c.cfg.MaxUploadBytes + maxFormBytes // the file and the form around it
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			if err := parseForm(r, p.upload); err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					c.renderError(w, r, s, http.StatusRequestEntityTooLarge, "error.too_large")
				} else {
					c.renderError(w, r, s, http.StatusBadRequest, "error.bad_form")
				}
				return
			}
			if !c.checkCSRF(w, r, s) {
				return
			}
			if p.write && !s.canWrite() {
				c.renderError(w, r, s, http.StatusForbidden, "error.viewer")
				return
			}
		}
		if err := p.h(w, r, s); err != nil {
			c.renderAPIError(w, r, s, err)
		}
	})
}

// parseForm reads the posted form (with its file, for an upload), so
// that a body too large or unreadable is answered as such and not as a
// missing CSRF token.
func parseForm(r *http.Request, upload bool) error {
	if upload {
		// Parts beyond 8 MiB go to temporary files, removed after the
		// request; the body limit bounds them.
		return r.ParseMultipartForm(8 << 20)
	}
	return r.ParseForm()
}

// redirectToSignIn sends a visitor without a session to the sign-in page,
// which brings them back to a page they asked for with GET.
func (c *Console) redirectToSignIn(w http.ResponseWriter, r *http.Request) {
	target := c.cfg.BasePath + "/login"
	if r.Method == http.MethodGet {
		target += "?next=" + urlQueryEscape(r.URL.RequestURI())
	} else {
		target += "?expired=1"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
