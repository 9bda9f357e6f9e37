// Package admin serves the admin API (docs: admin-api.md) as a plain
// http.Handler over a metering.Engine: projects, users, keys and credits,
// behind bearer tokens with an admin or viewer role.
//
// Each resource lives in its own file (health.go, projects.go, users.go)
// and contributes a route table; auth.go, errors.go and json.go hold what
// every route shares. Adding a route is one line in a table plus a method.
package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// Defaults of Config.
const (
	DefaultBasePath      = "/admin/v1"
	DefaultHealthTimeout = 2 * time.Second
	// DefaultMaxReconcileLag: GET /health answers 503 once the oldest
	// event not yet in Postgres is older than this.
	DefaultMaxReconcileLag = 60 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
	// DefaultMaxImportBytes bounds a CSV import: about 400,000 typical rows.
	DefaultMaxImportBytes = 16 << 20
)

// Config configures the admin API handler.
type Config struct {
	// BasePath is the path prefix every route lives under, as the request
	// reaches the handler (nothing is stripped). Default /admin/v1; "/"
	// serves the routes at the root.
	BasePath string
	// Tokens may call the API; at least one is required.
	Tokens []Token
	// Logger receives internal errors; secrets, API keys and request
	// bodies are never logged. Default: no logging.
	Logger *zap.Logger
	// HealthTimeout bounds each dependency check of GET /health. Default 2s.
	HealthTimeout time.Duration
	// MaxReconcileLag is the age of the oldest unreconciled event past
	// which GET /health answers 503 (the reconciler is stalled or far
	// behind). Default 60s.
	MaxReconcileLag time.Duration
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxImportBytes bounds the CSV body of POST /users/import, which is
	// read whole before anything is written; larger ones get 413.
	// Default 16 MiB.
	MaxImportBytes int64
	// PublicURL is the scheme, host and optional path users reach the
	// gateway at ("https://gw.school.example"); invite links are
	// <PublicURL>/claim/<token>. Default: the scheme and Host of the
	// request that creates the invite.
	PublicURL string
	// InviteTTL is how long an invite stays claimable when its creator
	// gives no expires_at. Default 7 days, at most 90.
	InviteTTL time.Duration
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.BasePath == "" {
		c.BasePath = DefaultBasePath
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.MaxReconcileLag == 0 {
		c.MaxReconcileLag = DefaultMaxReconcileLag
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxImportBytes == 0 {
		c.MaxImportBytes = DefaultMaxImportBytes
	}
	if c.InviteTTL == 0 {
		c.InviteTTL = metering.DefaultInviteLifetime
	}
	return c
}

// validate checks a config that WithDefaults has filled; errors name the field.
func (c Config) validate() error {
	if !strings.HasPrefix(c.BasePath, "/") {
		return fmt.Errorf("base_path: must start with /, got %q", c.BasePath)
	}
	if strings.ContainsAny(c.BasePath, "{} \t\r\n?#") {
		return fmt.Errorf("base_path: must be a plain path without {, }, ?, # or spaces, got %q", c.BasePath)
	}
	if c.HealthTimeout < 0 {
		return fmt.Errorf("health_timeout: must not be negative, got %s", c.HealthTimeout)
	}
	if c.MaxReconcileLag < 0 {
		return fmt.Errorf("max_reconcile_lag: must not be negative, got %s", c.MaxReconcileLag)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max_body_bytes: must not be negative, got %d", c.MaxBodyBytes)
	}
	if c.MaxImportBytes < 0 {
		return fmt.Errorf("max_import_bytes: must not be negative, got %d", c.MaxImportBytes)
	}
	if c.InviteTTL < 0 || c.InviteTTL > metering.MaxInviteLifetime {
		return fmt.Errorf("invite_expiry: must be positive and at most 90 days, got %s", c.InviteTTL)
	}
	if err := checkPublicURL(c.PublicURL); err != nil {
		return fmt.Errorf("public_url: %w", err)
	}
	if len(c.Tokens) == 0 {
		return errors.New("tokens: at least one token is required")
	}
	seen := make(map[string]int, len(c.Tokens))
	for i, t := range c.Tokens {
		if t.Secret == "" {
			return fmt.Errorf("tokens[%d].secret: must not be empty (token %q)", i, t.Name)
		}
		if j, dup := seen[t.Secret]; dup {
			// Never print the secret itself.
			return fmt.Errorf("tokens[%d].secret: duplicates the secret of tokens[%d] (tokens %q and %q)", i, j, c.Tokens[j].Name, t.Name)
		}
		seen[t.Secret] = i
		if t.Name == "" {
			return fmt.Errorf("tokens[%d].name: must not be empty (it is recorded as the actor of every write)", i)
		}
		if err := checkActor(t.Name); err != nil {
			return fmt.Errorf("tokens[%d].name: %w", i, err)
		}
		if _, err := ParseRole(string(t.Role)); err != nil {
			return fmt.Errorf("tokens[%d].role: %w", i, err)
		}
	}
	return nil
}

// checkPublicURL accepts "" (invite links then use the request's host) or
// an absolute http(s) URL with a host and nothing after its path, to which
// /claim/<token> can be appended.
func checkPublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("must be an absolute http or https URL such as https://gw.example.org")
	}
	if u.User != nil {
		return errors.New("must not hold a user name or password") // nor print them
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("must be an absolute http or https URL such as https://gw.example.org, got %q", s)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("must hold only a scheme, a host and a path, got %q", s)
	}
	return nil
}

// checkActor validates a token name, which every write records as its
// actor in events and the audit log: one line of valid UTF-8 without
// control characters, at most metering.MaxActorLength bytes.
func checkActor(name string) error {
	if metering.CleanText(name, metering.MaxActorLength) != name {
		return fmt.Errorf("must be one line of valid UTF-8 without control characters, at most %d bytes", metering.MaxActorLength)
	}
	return nil
}

// api is the handler New returns.
type api struct {
	engine *metering.Engine
	cfg    Config
	log    *zap.Logger
	auth   *authenticator
	mux    *http.ServeMux
	base   string // BasePath without its trailing slash
	// access holds each served pattern's route, for authorization before
	// the handler runs; public holds the paths of public routes, which
	// need no token whatever the method (a wrong one is a plain 405).
	access map[string]route
	public map[string]bool
}

// handlerFunc is a route's handler: it writes its answer, or returns an
// error that writeError turns into the JSON error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one line of a resource's route table.
type route struct {
	method string
	path   string // below BasePath, with {wildcards}
	h      handlerFunc
	public bool // served without a token (only /health)
	// adminOnly: a read that viewers may not make either, because it
	// hands out a credential (revealing a key).
	adminOnly bool
	// query lists the query parameters the handler reads; any other is
	// refused before it runs (query.go).
	query []string
}

// New checks cfg and returns the admin API handler over engine.
func New(engine *metering.Engine, cfg Config) (http.Handler, error) {
	if engine == nil {
		return nil, errors.New("admin: engine is required")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &api{engine: engine, cfg: cfg, log: cfg.Logger, auth: newAuthenticator(cfg.Tokens),
		mux: http.NewServeMux(), base: strings.TrimSuffix(cfg.BasePath, "/"), access: map[string]route{}, public: map[string]bool{}}
	for _, rt := range a.routes() {
		pattern := rt.method + " " + a.base + rt.path
		a.mux.Handle(pattern, a.wrap(rt))
		a.access[pattern] = rt
		if rt.public {
			a.public[a.base+rt.path] = true
		}
	}
	return a, nil
}

// routes is every route of the API, one table per resource. The OpenAPI
// document (openapi.json) describes exactly these; a test holds them equal.
func (a *api) routes() []route {
	var all []route
	for _, table := range [][]route{a.healthRoutes(), a.openAPIRoutes(), a.projectRoutes(), a.userRoutes(),
		a.inviteRoutes(), a.csvRoutes(), a.usageRoutes(), a.reportRoutes(), a.auditRoutes(), a.transferRoutes(), a.priceRoutes(),
		a.deadLetterRoutes(), a.whoamiRoutes()} {
		all = append(all, table...)
	}
	return all
}

// ServeHTTP authenticates, routes and authorizes a request.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Route first without running anything, so that public routes need no
	// token and 404/405 come out as JSON.
	handler, pattern := a.mux.Handler(r)
	rt := a.access[pattern]
	public := a.public[r.URL.Path]
	var p principal
	if !public {
		var ok bool
		if p, ok = a.auth.authenticate(r); !ok {
			h.Set("WWW-Authenticate", `Bearer realm="tollgate admin"`)
			a.writeError(w, r, &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated",
				Message: "missing or invalid admin token (Authorization: Bearer <token>)"})
			return
		}
	}
	if pattern == "" {
		a.noRoute(w, r, handler)
		return
	}
	if !public && p.role != RoleAdmin && (!isRead(r.Method) || rt.adminOnly) {
		what := "which may only read"
		if rt.adminOnly {
			what = "and this route needs admin"
		}
		a.writeError(w, r, &apiError{Status: http.StatusForbidden, Code: "forbidden",
			Message: fmt.Sprintf("token %q has the %s role, %s", p.name, p.role, what)})
		return
	}
	a.mux.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
}

func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// noRoute answers a request the mux has no route for with the mux's own
// status (404, or 405 with its Allow header) and a JSON body.
func (a *api) noRoute(w http.ResponseWriter, r *http.Request, muxHandler http.Handler) {
	rec := &statusRecorder{header: http.Header{}}
	muxHandler.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		a.writeError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)})
		return
	}
	a.writeError(w, r, &apiError{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("There is no route %s %s", r.Method, r.URL.Path)})
}

// statusRecorder captures the status and headers of the mux's fallback
// handler; the plain-text body is dropped.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}

// wrap turns a route's handler into an http.Handler that writes its error.
func (a *api) wrap(rt route) http.Handler {
	name := rt.method + " " + strings.ReplaceAll(rt.path, "...}", "}") // as the docs write it
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := checkQuery(r.URL.RawQuery, name, rt.query)
		if err == nil {
			err = rt.h(w, r)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}
