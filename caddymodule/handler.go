package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler charges each request to the API key's owner before passing it on.
// A request that cannot be paid for, or whose key is not valid, never
// reaches the next handler.
type Handler struct {
	// Cost of one request in credits, as a decimal string ("1", "0.25").
	// Default 1.
	Cost string `json:"cost,omitempty"`
	// InFlightLease bounds how long a request counts as in flight (which
	// blocks deleting its user) if its release never arrives because the
	// gateway died. Longer than the longest upstream call. Default 15m.
	InFlightLease caddy.Duration `json:"in_flight_lease,omitempty"`

	lease  time.Duration
	cost   metering.Credits
	engine *metering.Engine
	log    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.metering", New: func() caddy.Module { return new(Handler) }}
}

// Provision parses the cost and finds the metering app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	h.cost = metering.Micro
	if h.Cost != "" {
		c, err := metering.ParseCredits(h.Cost)
		if err != nil || c < 0 {
			return errors.New("metering: cost must be a non-negative decimal with at most 6 fractional digits")
		}
		h.cost = c
	}
	h.lease = DefaultInFlightLease
	if h.InFlightLease != 0 {
		if h.InFlightLease < 0 {
			return errors.New("metering: in_flight_lease must be positive")
		}
		h.lease = time.Duration(h.InFlightLease)
	}
	app, err := appFrom(ctx, "the metering handler")
	if err != nil {
		return err
	}
	h.engine = app.Engine()
	return nil
}

// Static error bodies, built once: the OpenAI error shape SDKs already read.
var (
	bodyInvalidKey  = []byte(`{"error":{"code":"invalid_api_key","type":"invalid_request_error","message":"Invalid API key."}}`)
	bodyUnavailable = []byte(`{"error":{"code":"metering_unavailable","type":"server_error","message":"Metering is temporarily unavailable; the request was not forwarded. Try again shortly."}}`)
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	key := apiKey(r)
	res, err := h.engine.ChargeTracked(r.Context(), key, h.cost, r.Method+" "+r.URL.Path, h.lease)
	if err != nil {
		if r.Context().Err() == nil {
			h.log.Error("charge failed; refusing the request (fail closed)", zap.Error(err))
		}
		return writeJSON(w, http.StatusServiceUnavailable, bodyUnavailable)
	}
	switch res.Status {
	case metering.KeyRefused:
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		return writeJSON(w, http.StatusUnauthorized, bodyInvalidKey)
	case metering.Insufficient:
		return writeJSON(w, http.StatusPaymentRequired, insufficientBody(res.Remaining))
	}

	// The key is the client's credential for Tollgate, not for upstream.
	r.Header.Del("Authorization")
	r.Header.Del("X-Api-Key")
	r.Header.Set("X-Tollgate-User", res.Username)
	if res.Project != "" {
		r.Header.Set("X-Tollgate-Project", res.Project)
	} else {
		r.Header.Del("X-Tollgate-Project")
	}
	remaining := res.Remaining.String()
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.metering.user", res.Username)
		repl.Set("http.metering.project", res.Project)
		repl.Set("http.metering.remaining", remaining)
	}
	w.Header().Set("X-Credits-Remaining", remaining)
	// Queued, not awaited: the response is not held up by Redis. Deferred
	// so a panicking upstream handler does not leave the lease to expire.
	defer h.engine.Release(res.Lease)
	return next.ServeHTTP(w, r)
}

// DefaultInFlightLease is Handler.InFlightLease's default.
const DefaultInFlightLease = 15 * time.Minute

// apiKey reads "Authorization: Bearer <key>" or "X-API-Key: <key>".
func apiKey(r *http.Request) string {
	if v := r.Header.Get("Authorization"); v != "" {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

func insufficientBody(effective metering.Credits) []byte {
	b := make([]byte, 0, 192)
	b = append(b, `{"error":{"code":"insufficient_credits","type":"insufficient_quota","message":"Not enough credits for this request.","effective_credits":`...)
	b = effective.AppendText(b)
	return append(b, "}}"...)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
