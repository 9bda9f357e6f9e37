package caddymodule

import (
	"errors"
	"fmt"
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
	// NoInFlight (Caddyfile: in_flight_lease off) charges a fixed-cost
	// route without recording its requests in flight: a fixed charge is
	// final at admission, so its user may be deleted while one is served
	// (in_flight does not count them), and Redis does one write less per
	// request and no release after it. What tracking also buys is lost:
	// when Redis's answer to a charge is lost (a timeout, a broken
	// connection) the request is refused 503 and may stay charged, as
	// nothing says what to give back. Not for price_by or cost_header
	// routes, whose reservations are always tracked.
	NoInFlight bool `json:"no_in_flight,omitempty"`
	// CreditLeases (Caddyfile: credit_leases on|off) serves a fixed-cost
	// route from per-gateway credit leases: the gateway takes credits for a
	// busy user in one Redis call and admits the user's next requests from
	// them in memory, exactly (docs/architecture.md, "Credit leases").
	// Admin changes reach every gateway before the admin API answers. Like
	// in_flight_lease off, requests are final at admission and not in
	// flight. Default on for a fixed-cost route that sets no
	// in_flight_lease; off gives tracked charges (in flight until the
	// response is done, so deleting the user waits for them).
	CreditLeases *bool `json:"credit_leases,omitempty"`

	// PriceBy "model" meters by usage: the request is estimated from its
	// body, reserved at the model's price, and settled from the usage the
	// upstream reports (see variable_cost.go).
	PriceBy string `json:"price_by,omitempty"`
	// CostHeader names an upstream response header carrying the request's
	// actual cost in credits; Cost is then the amount reserved (a cap).
	CostHeader string `json:"cost_header,omitempty"`
	// Buckets restricts and orders the buckets this route draws from
	// ("allowance", "pool", "awarded", "purchased"). Default: all four.
	Buckets []string `json:"buckets,omitempty"`
	// UnknownModel is "reject" (default: 400 unknown_model) or a credit
	// amount charged per request for a model without a price.
	UnknownModel string `json:"unknown_model,omitempty"`
	// MaxOutputTokens is reserved, and sent upstream as the request's
	// output limit, when a request sets none. Default 4096.
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// MinOutputTokens: when the user cannot afford MaxOutputTokens, the
	// largest output they can afford is reserved and sent instead, down to
	// this many tokens per choice (402 below). Default 16.
	MinOutputTokens int64 `json:"min_output_tokens,omitempty"`
	// ChatLimitField is the chat field that output limit is sent in:
	// "max_completion_tokens" (default) or "max_tokens" (older
	// OpenAI-compatible servers).
	ChatLimitField string `json:"chat_limit_field,omitempty"`
	// ImageTokens is reserved for each image a request sends (input) or
	// asks for (output), for models that bill images in tokens. Default 6240.
	ImageTokens int64 `json:"image_tokens,omitempty"`
	// AudioSeconds is reserved for a transcription, whose duration is
	// unknown until the upstream answers. Default 600.
	AudioSeconds int64 `json:"audio_seconds,omitempty"`
	// MaxRequestBody bounds a JSON request body, in bytes (413 beyond).
	// Default 4 MiB.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`
	// MaxMultipartBody bounds a multipart/form-data body (audio and image
	// uploads), in bytes (413 beyond). Default 25 MiB, OpenAI's own limit.
	MaxMultipartBody int64 `json:"max_multipart_body,omitempty"`
	// Lease is how long a reservation may stay unsettled before the
	// sweeper settles it; renewed while a response runs. Default:
	// InFlightLease, else 15m.
	Lease caddy.Duration `json:"lease,omitempty"`
	// SettleWait bounds how long a JSON response held for its settlement
	// (so that X-Credits-Remaining is the settled balance) waits for Redis
	// before it is sent with the balance after the reservation instead; the
	// settlement then finishes in the background. Default 1s.
	SettleWait caddy.Duration `json:"settle_wait,omitempty"`
	// InsufficientStatus is the status of a request the user cannot pay
	// for: 402 (default) or 429, which OpenAI uses for an exhausted quota
	// (sent with "x-should-retry: false" so that OpenAI's SDKs do not
	// retry it).
	InsufficientStatus int `json:"insufficient_status,omitempty"`

	lease        time.Duration
	leased       bool // CreditLeases on
	cost         metering.Credits
	engine       *metering.Engine
	users        *engineUsers // entered for each request (engine_users.go)
	log          *zap.Logger
	variableCost bool // price_by or cost_header: reserve, then settle
	priceByModel bool
	buckets      metering.BucketOrder
	unknown      metering.UnknownModelPolicy
	estimateCfg  estimateConfig
	maxBody      int64
	maxMultipart int64
	minOutput    int64
	settleWait   time.Duration
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.metering", New: func() caddy.Module { return new(Handler) }}
}

// Provision checks the settings and finds the metering app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if err := h.provisionSettings(); err != nil {
		return err
	}
	app, err := appFrom(ctx, "the metering handler")
	if err != nil {
		return err
	}
	h.engine, h.users = app.Engine(), app.engineUsers()
	if h.leased {
		// The heartbeat starts now, so the first requests already find
		// this gateway alive.
		h.engine.StartLeases()
	}
	return nil
}

// provisionSettings checks every setting and derives the working fields
// from them. It is the one place the settings are checked: Provision runs
// it, and so does parseHandler (on a copy) when a Caddyfile is adapted.
func (h *Handler) provisionSettings() error {
	h.cost = metering.Micro
	if h.Cost != "" {
		c, err := metering.ParseCredits(h.Cost)
		if err != nil || c < 0 {
			return fmt.Errorf("metering: cost %q must be a non-negative decimal with at most 6 fractional digits", h.Cost)
		}
		h.cost = c
	}
	switch h.InsufficientStatus {
	case 0, http.StatusPaymentRequired, http.StatusTooManyRequests:
	default:
		return fmt.Errorf("metering: insufficient_status %d: 402 or 429", h.InsufficientStatus)
	}
	h.lease = DefaultInFlightLease
	if h.InFlightLease != 0 {
		if h.InFlightLease < 0 {
			return errors.New("metering: in_flight_lease must be positive")
		}
		h.lease = time.Duration(h.InFlightLease)
	}
	if h.NoInFlight && h.InFlightLease != 0 {
		return errors.New("metering: in_flight_lease is off; it takes no duration")
	}
	if err := h.provisionVariableCost(); err != nil {
		return err
	}
	if h.NoInFlight && h.variableCost {
		return errors.New("metering: in_flight_lease off is for fixed-cost routes; reservations (price_by, cost_header) are always tracked")
	}
	// Leases are the default of a fixed-cost route that does not ask for
	// in-flight tracking (in_flight_lease) or for untracked plain charges.
	explicit := h.CreditLeases != nil
	h.leased = !h.variableCost && h.InFlightLease == 0 && !h.NoInFlight
	if explicit {
		h.leased = *h.CreditLeases
	}
	switch {
	case explicit && h.leased && h.variableCost:
		return errors.New("metering: credit_leases is for fixed-cost routes; price_by and cost_header reserve per request")
	case explicit && h.leased && (h.InFlightLease != 0 || h.NoInFlight):
		return errors.New("metering: credit_leases on charges nothing in flight; in_flight_lease does not apply")
	}
	return nil
}

// Defaults of Handler.MaxRequestBody and MaxMultipartBody.
const (
	DefaultMaxRequestBody   = 4 << 20
	DefaultMaxMultipartBody = 25 << 20
)

// provisionVariableCost checks the variable-cost settings.
func (h *Handler) provisionVariableCost() error {
	switch h.PriceBy {
	case "", "model":
	default:
		return fmt.Errorf("metering: price_by %q: only \"model\" is supported", h.PriceBy)
	}
	h.priceByModel = h.PriceBy == "model"
	if h.priceByModel && h.CostHeader != "" {
		return errors.New("metering: price_by and cost_header exclude each other")
	}
	h.variableCost = h.priceByModel || h.CostHeader != ""
	if !h.variableCost {
		if len(h.Buckets) > 0 || h.UnknownModel != "" || h.Lease != 0 || h.SettleWait != 0 || h.hasEstimateOptions() {
			return errors.New("metering: buckets, unknown_model, lease, settle_wait and the estimate's options need price_by or cost_header")
		}
		return nil
	}
	var err error
	if h.buckets, err = metering.ParseBucketOrder(h.Buckets); err != nil {
		return fmt.Errorf("metering: buckets: %w", err)
	}
	switch h.UnknownModel {
	case "", "reject":
		h.unknown = metering.UnknownModelPolicy{Reject: true}
	default:
		c, err := metering.ParseCredits(h.UnknownModel)
		if err != nil || c < 0 {
			return fmt.Errorf("metering: unknown_model %q: \"reject\" or a credit amount", h.UnknownModel)
		}
		h.unknown = metering.UnknownModelPolicy{Default: metering.Price{PerRequest: c}}
	}
	if err := h.provisionEstimate(); err != nil {
		return err
	}
	if h.Lease != 0 {
		if h.Lease < 0 {
			return errors.New("metering: lease must be positive")
		}
		h.lease = time.Duration(h.Lease)
	}
	h.settleWait = DefaultSettleWait
	if h.SettleWait != 0 {
		if h.SettleWait < 0 {
			return errors.New("metering: settle_wait must be positive")
		}
		h.settleWait = time.Duration(h.SettleWait)
	}
	return nil
}

// DefaultSettleWait is Handler.SettleWait's default.
const DefaultSettleWait = time.Second

// hasEstimateOptions reports whether any option of the estimate is set.
func (h *Handler) hasEstimateOptions() bool {
	return h.MaxOutputTokens != 0 || h.MinOutputTokens != 0 || h.ChatLimitField != "" || h.ImageTokens != 0 ||
		h.AudioSeconds != 0 || h.MaxRequestBody != 0 || h.MaxMultipartBody != 0
}

// provisionEstimate checks the estimate's options and the body limits.
func (h *Handler) provisionEstimate() error {
	for _, v := range []int64{h.MaxOutputTokens, h.MinOutputTokens, h.ImageTokens} {
		if v < 0 || v > maxTokensValue {
			return fmt.Errorf("metering: max_output_tokens, min_output_tokens and image_tokens must be positive token counts of at most %d", int64(maxTokensValue))
		}
	}
	if h.AudioSeconds < 0 || h.AudioSeconds > 1<<31 {
		return fmt.Errorf("metering: audio_seconds must be positive and at most %d", int64(1<<31))
	}
	switch h.ChatLimitField {
	case "", "max_completion_tokens", "max_tokens":
	default:
		return fmt.Errorf("metering: chat_limit_field %q: max_completion_tokens or max_tokens", h.ChatLimitField)
	}
	h.estimateCfg = estimateConfig{MaxOutputTokens: h.MaxOutputTokens, AudioSeconds: h.AudioSeconds,
		ImageTokens: h.ImageTokens, ChatLimitField: h.ChatLimitField, AudioDuration: measureAudio}.withDefaults()
	h.minOutput = defaultMinOutput
	if h.MinOutputTokens != 0 {
		h.minOutput = h.MinOutputTokens
	}
	h.maxBody, h.maxMultipart = DefaultMaxRequestBody, DefaultMaxMultipartBody
	if h.MaxRequestBody < 0 || h.MaxMultipartBody < 0 {
		return errors.New("metering: max_request_body and max_multipart_body must be positive")
	}
	if h.MaxRequestBody != 0 {
		h.maxBody = h.MaxRequestBody
	}
	if h.MaxMultipartBody != 0 {
		h.maxMultipart = h.MaxMultipartBody
	}
	return nil
}

// Static error bodies, built once: the OpenAI error shape SDKs already read.
var (
	bodyInvalidKey  = []byte(`{"error":{"code":"invalid_api_key","type":"invalid_request_error","message":"Invalid API key."}}`)
	bodyUnavailable = []byte(`{"error":{"code":"metering_unavailable","type":"server_error","message":"Metering is temporarily unavailable; the request was not forwarded. Try again shortly."}}`)
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Deferred first, so it runs after the release below is queued.
	h.users.enter()
	defer h.users.leave()
	if h.variableCost {
		return h.serveVariableCost(w, r, next)
	}
	key := apiKey(r)
	if h.leased {
		return h.serveLeased(w, r, next, key)
	}
	lease := h.lease
	if h.NoInFlight {
		lease = 0 // final at admission: nothing in flight, nothing to release
	}
	res, err := h.engine.ChargeTracked(r.Context(), key, h.cost, requestLabel(r), lease)
	if err != nil {
		return h.failClosed(w, r, "charge", err)
	}
	if refused, werr := h.refuse(w, res.Status, res.Remaining, h.cost); refused {
		return werr
	}
	setIdentity(r, w, res.Username, res.Project, res.Remaining)
	// Queued, not awaited: the response is not held up by Redis. Deferred
	// so a panicking upstream handler does not leave the lease to expire.
	defer h.engine.Release(res.Lease)
	return next.ServeHTTP(w, r)
}

// serveLeased charges from this gateway's credit lease for the user (or
// takes one): final at admission, nothing to release.
func (h *Handler) serveLeased(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, key string) error {
	res, err := h.engine.ChargeLeased(r.Context(), key, h.cost, requestLabel(r))
	if err != nil {
		return h.failClosed(w, r, "charge", err)
	}
	if refused, werr := h.refuse(w, res.Status, res.Remaining, h.cost); refused {
		return werr
	}
	setIdentity(r, w, res.Username, res.Project, res.Remaining)
	return next.ServeHTTP(w, r)
}

// requestLabel is the request as its event records it ("POST /v1/…"):
// the path is the client's choice, so it is made safe for the ledger.
func requestLabel(r *http.Request) string {
	return metering.CleanText(r.Method+" "+r.URL.Path, metering.MaxRequestLabel)
}

// setIdentity removes the client's key and every X-Tollgate-* header it
// sent from the request, and tells the upstream (headers), the config
// (placeholders) and the client (X-Credits-Remaining) who pays and what is
// left.
func setIdentity(r *http.Request, w http.ResponseWriter, user, project string, remaining metering.Credits) {
	// The key is the client's credential for Tollgate, not for upstream.
	r.Header.Del("Authorization")
	r.Header.Del("X-Api-Key")
	dropTollgateHeaders(r.Header)
	rem := remaining.String()
	// One backing array for the three header values instead of one per
	// Header.Set; each slice is capped, so an Add appends elsewhere. The
	// names are canonical already.
	vals := [...]string{user, project, rem}
	r.Header["X-Tollgate-User"] = vals[0:1:1]
	if project != "" {
		r.Header["X-Tollgate-Project"] = vals[1:2:2]
	} else {
		r.Header.Del("X-Tollgate-Project")
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.metering.user", user)
		repl.Set("http.metering.project", project)
		repl.Set("http.metering.remaining", rem)
	}
	w.Header()[headerRemaining] = vals[2:3:3]
}

// headerRemaining tells the client its balance: after the charge, the
// settlement, or the reservation (see README, "X-Credits-Remaining").
const headerRemaining = "X-Credits-Remaining"

// dropTollgateHeaders removes every header a client could pass off as the
// gateway's: any name starting "X-Tollgate-" in any case, with "_" read as
// "-" (CGI-style servers map both to HTTP_X_TOLLGATE_…).
func dropTollgateHeaders(h http.Header) {
	const prefix = "x-tollgate-"
	for name := range h {
		if len(name) < len(prefix) {
			continue
		}
		match := true
		for i := 0; i < len(prefix) && match; i++ {
			c := name[i]
			switch {
			case c == '_':
				c = '-'
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			match = c == prefix[i]
		}
		if match {
			delete(h, name)
		}
	}
}

func writeKeyRefused(w http.ResponseWriter) error {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
	return writeJSON(w, http.StatusUnauthorized, bodyInvalidKey)
}

// DefaultInFlightLease is Handler.InFlightLease's default.
const DefaultInFlightLease = 15 * time.Minute

// failClosed answers 503 when metering could not be done: no request
// reaches upstream unmetered.
func (h *Handler) failClosed(w http.ResponseWriter, r *http.Request, what string, err error) error {
	if r.Context().Err() == nil {
		h.log.Error(what+" failed; refusing the request (fail closed)", zap.Error(err))
	}
	return writeJSON(w, http.StatusServiceUnavailable, bodyUnavailable)
}

// refuse answers a charge or reservation that did not go through, and
// reports whether it did; Charged (Reserved) is left to the caller.
// remaining is the balance the user has, required what the request needed.
func (h *Handler) refuse(w http.ResponseWriter, status metering.ChargeStatus, remaining, required metering.Credits) (bool, error) {
	switch status {
	case metering.KeyRefused:
		return true, writeKeyRefused(w)
	case metering.Insufficient:
		return true, h.writeInsufficient(w, remaining, required)
	case metering.UnknownModel:
		return true, writeJSON(w, http.StatusBadRequest, bodyUnknownModel)
	}
	return false, nil
}

// writeInsufficient answers a request the user cannot pay for: 402, or
// 429 with x-should-retry: false (OpenAI's SDKs retry a 429 otherwise,
// and waiting brings no credits), with what the user has and needed.
func (h *Handler) writeInsufficient(w http.ResponseWriter, remaining, required metering.Credits) error {
	w.Header().Set(headerRemaining, remaining.String())
	status := http.StatusPaymentRequired
	if h.InsufficientStatus == http.StatusTooManyRequests {
		status = http.StatusTooManyRequests
		w.Header().Set("X-Should-Retry", "false")
	}
	return writeJSON(w, status, insufficientBody(remaining, required))
}

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

// insufficientBody is the refusal's JSON: the OpenAI error shape (type
// insufficient_quota, as OpenAI answers an exhausted balance) with the
// user's effective credits and the credits the request needed.
func insufficientBody(effective, required metering.Credits) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"error":{"code":"insufficient_credits","type":"insufficient_quota","param":null,"message":"Not enough credits for this request: it needs `...)
	b = required.AppendText(b)
	b = append(b, `, the balance is `...)
	b = effective.AppendText(b)
	b = append(b, `.","effective_credits":`...)
	b = effective.AppendText(b)
	b = append(b, `,"required_credits":`...)
	b = required.AppendText(b)
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
