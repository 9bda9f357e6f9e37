package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/console"
)

func init() {
	caddy.RegisterModule(AdminHandler{})
}

// AdminHandler serves the admin API (see admin-api.md) under its base
// path, and the admin console's pages under /admin/ and /claim/ (the
// invite links). It answers every request it is given; route it with a
// path matcher such as /admin /admin/* /claim/*.
type AdminHandler struct {
	// Tokens allowed to call the API. Secrets may be placeholders such as
	// {env.TOLLGATE_ADMIN_TOKEN}; a token whose secret resolves to empty is
	// skipped (an optional token left unset).
	Tokens []AdminToken `json:"tokens,omitempty"`
	// BasePath the routes live under. Default /admin/v1.
	BasePath string `json:"base_path,omitempty"`
	// MaxImportBytes bounds the CSV body of POST /users/import. Default 16 MiB.
	MaxImportBytes int64 `json:"max_import_bytes,omitempty"`
	// MaxReconcileLag is the age of the oldest event not yet in Postgres
	// past which GET /health answers 503 (reconciler stalled). Default 60s.
	MaxReconcileLag caddy.Duration `json:"max_reconcile_lag,omitempty"`
	// PublicURL is where users reach the gateway ("https://gw.example.org");
	// invite links are <public_url>/claim/<token>. Default: the scheme and
	// host of the request that creates the invite. Placeholders such as
	// {env.TOLLGATE_PUBLIC_URL} are allowed.
	PublicURL string `json:"public_url,omitempty"`
	// InviteExpiry is how long an invite stays claimable unless its creator
	// says otherwise. Default 7 days, at most 90.
	InviteExpiry caddy.Duration `json:"invite_expiry,omitempty"`
	// ConsoleOff serves the API alone, without the console's pages.
	ConsoleOff bool `json:"console_off,omitempty"`
	// SessionIdle signs a console session out after this long unused.
	// Default 30m.
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`
	// SessionMaxAge signs a console session out this long after sign-in.
	// Default 12h.
	SessionMaxAge caddy.Duration `json:"session_max_age,omitempty"`

	api     http.Handler
	console *console.Console
	users   *engineUsers // entered for each request (engine_users.go)
}

// AdminToken is one bearer token: its secret, the name recorded as actor in
// the audit log, and its role (admin or viewer).
type AdminToken struct {
	Secret string `json:"secret,omitempty"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

// CaddyModule returns the Caddy module information.
func (AdminHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.metering_admin", New: func() caddy.Module { return new(AdminHandler) }}
}

// Provision resolves token secrets and builds the admin API.
func (a *AdminHandler) Provision(ctx caddy.Context) error {
	log := ctx.Logger()
	app, err := appFrom(ctx, "metering_admin")
	if err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	var tokens []admin.Token
	for _, t := range a.Tokens {
		secret := repl.ReplaceAll(t.Secret, "")
		if secret == "" {
			log.Warn("admin token has an empty secret and is disabled", zap.String("name", t.Name))
			continue
		}
		role, err := admin.ParseRole(t.Role)
		if err != nil {
			return fmt.Errorf("metering_admin token %q: %w", t.Name, err)
		}
		tokens = append(tokens, admin.Token{Name: t.Name, Secret: secret, Role: role})
	}
	if len(tokens) == 0 {
		return fmt.Errorf("metering_admin: no usable token (set the admin token's secret, e.g. TOLLGATE_ADMIN_TOKEN)")
	}
	a.users = app.engineUsers()
	a.api, err = admin.New(app.Engine(), admin.Config{BasePath: a.BasePath, Tokens: tokens, Logger: log,
		MaxImportBytes: a.MaxImportBytes, MaxReconcileLag: time.Duration(a.MaxReconcileLag),
		PublicURL: repl.ReplaceAll(a.PublicURL, ""), InviteTTL: time.Duration(a.InviteExpiry)})
	if err != nil {
		return fmt.Errorf("metering_admin: %w", err)
	}
	if a.ConsoleOff {
		return nil
	}
	if strings.TrimSuffix(a.BasePath, "/") == "" && a.BasePath != "" {
		log.Warn("metering_admin: the API is served at the root (base_path /), which leaves no path for the console; the console is off")
		return nil
	}
	a.console, err = console.New(console.Config{API: a.api, APIBasePath: a.BasePath, Logger: log,
		MaxUploadBytes: a.MaxImportBytes, SessionIdle: time.Duration(a.SessionIdle), SessionMaxAge: time.Duration(a.SessionMaxAge),
		ClientAddress: clientIP})
	if err != nil {
		return fmt.Errorf("metering_admin: %w", err)
	}
	return nil
}

// clientIP is the address Caddy found for the client (its trusted_proxies
// setting decides whether a forwarded address is believed).
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (a *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	a.users.enter()
	defer a.users.leave()
	// The API's paths (/admin/v1/...) lie under the console's (/admin/...):
	// the API's are matched first.
	if a.console != nil && !a.isAPIPath(r.URL.Path) && a.console.Handles(r.URL.Path) {
		a.console.ServeHTTP(w, r)
		return nil
	}
	a.api.ServeHTTP(w, r)
	return nil
}

func (a *AdminHandler) isAPIPath(path string) bool {
	base := strings.TrimSuffix(a.BasePath, "/")
	if base == "" {
		base = strings.TrimSuffix(admin.DefaultBasePath, "/")
	}
	return path == base || strings.HasPrefix(path, base+"/")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*AdminHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*AdminHandler)(nil)
)
