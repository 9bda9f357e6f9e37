package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// The variable-cost path: estimate, reserve, proxy while capturing the
// response, settle what was used.

var (
	bodyUnknownModel = []byte(`{"error":{"code":"unknown_model","type":"invalid_request_error","param":"model","message":"This route has no price for the requested model."}}`)
	bodyTooLarge     = []byte(`{"error":{"code":"request_too_large","type":"invalid_request_error","message":"The request body is too large."}}`)
)

// settleTimeout bounds the settlement after the response; it runs on a
// context detached from the request, which a client disconnect cancels.
const settleTimeout = 10 * time.Second

func (h *Handler) serveVariableCost(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	key := apiKey(r)
	// A malformed key is refused before the body is read: reading up to
	// max_request_body for a request that will be refused anyway is waste.
	if !metering.WellFormedKey(key) {
		return h.refuseKey(w)
	}
	est := &estimate{}
	if h.priceByModel {
		// So is a well-formed key that is unknown, inactive or expired:
		// from the local key cache, before a byte of the body is read.
		ok, err := h.engine.KeyUsable(r.Context(), key)
		if err != nil {
			return h.failClosed(w, r, "key check", err)
		}
		if !ok {
			return h.refuseKey(w)
		}
		var done bool
		if est, done, err = h.readEstimate(w, r); done {
			return err
		}
	}

	req := metering.ReserveRequest{Key: key, Model: est.Model, Unknown: h.unknown,
		Buckets: h.buckets, Request: requestLabel(r), Lease: h.lease}
	if h.CostHeader != "" {
		limit := h.cost
		req.Fixed, req.Model = &limit, ""
	}
	res, err := h.reserve(r.Context(), req, est)
	if err != nil {
		return h.failClosed(w, r, "reserve", err)
	}
	if refused, werr := h.refuse(w, res.Status, res.Remaining, h.required(res, est), res.Project); refused {
		return werr
	}

	if h.priceByModel {
		// The upstream gets the body the estimate read, with the output
		// limit that was reserved and include_usage where the gateway set them.
		if b := est.upstreamBody(); b != nil {
			setBody(r, b, est.contentType)
		} else if est.body != nil {
			setBody(r, est.body, "")
		}
	}
	h.metrics.admitted(res.Project, res.Taken)
	setIdentity(r, w, res.Username, res.Project, res.Remaining)
	r.Header.Set("X-Tollgate-Reservation", res.ID)
	// The capture reads the usage from the answer: it must not come
	// compressed in the client's encoding (SDKs ask for gzip). Without the
	// client's header the proxy's transport negotiates its own compression
	// with the upstream and decompresses before the capture.
	r.Header.Del("Accept-Encoding")
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.metering.model", res.Model)
		repl.Set("http.metering.reserved", res.Reserved.String())
	}

	m := &meteredCall{h: h, est: est, res: res, repl: repl, start: time.Now()}
	cw := &capture{ResponseWriter: w, ctx: r.Context(), dropUsageChunk: est.Stream && !est.ClientWantsUsage,
		costHeader: h.CostHeader, holdJSON: true, atStreamEnd: m.settleAtStreamEnd}
	m.cw = cw
	m.stopRenew = h.renewWhileServing(res)
	var nextErr error
	// Settled in a defer because reverse_proxy ends a response it cannot
	// finish (client gone, upstream broken mid-body) by panicking with
	// http.ErrAbortHandler; that is an outcome like any other. Any other
	// panic charges the estimate; both panics go on up afterwards.
	defer func() {
		p := recover()
		m.stopRenew()
		aborted := p == http.ErrAbortHandler //nolint:errorlint // a sentinel panic value, compared as net/http does
		if p == nil {
			cw.finishSSE()
		}
		cw.finishJSON()
		// The request's context, not the status, tells a client that left:
		// reverse_proxy writes a 499 of its own when the client cancels.
		clientGone := aborted || r.Context().Err() != nil || cw.writeErr != nil
		o := metering.Outcome{Units: est.Units, Status: cw.status}
		if p == nil || aborted {
			o = h.outcome(est, cw, res, nextErr, clientGone)
		}
		o.Duration = time.Since(m.start)
		m.finish(o, p == nil)
		if p != nil {
			panic(p)
		}
	}()
	nextErr = next.ServeHTTP(cw, r)
	return nextErr
}

// readEstimate reads and estimates the body (bounded by the route's limit
// for its type); done is true when it answered the request itself.
func (h *Handler) readEstimate(w http.ResponseWriter, r *http.Request) (est *estimate, done bool, err error) {
	ct := r.Header.Get("Content-Type")
	limit := h.maxBody
	if isMultipart(ct) {
		limit = h.maxMultipart
	}
	body, err := readBody(r, limit)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			h.metrics.count(outcomeRefusedBody, "")
			return nil, true, writeJSON(w, http.StatusRequestEntityTooLarge, bodyTooLarge)
		}
		h.metrics.count(outcomeCanceled, "")
		return nil, true, err // the client went away while sending
	}
	est, err = estimateRequest(endpointOf(r.URL.Path), ct, body, h.estimateCfg)
	if err != nil {
		h.metrics.count(outcomeRefusedBody, "")
		return nil, true, writeRequestError(w, err)
	}
	return est, false, nil
}

// outcome decides what a finished request is charged.
func (h *Handler) outcome(est *estimate, cw *capture, res *metering.Reservation, nextErr error, clientGone bool) metering.Outcome {
	o := metering.Outcome{Status: cw.status, ServedModel: cw.model}
	switch {
	case cw.status >= 500:
		// The upstream failed: nothing is charged.
		o.Refund = true
		return o
	case cw.status == 0 && nextErr != nil && !clientGone:
		// No response at all: the upstream could not be reached
		// (reverse_proxy returned the error before writing anything).
		o.Refund = true
		return o
	case cw.status == 0 && clientGone:
		// The client left before the upstream answered: the upstream may
		// have read the prompt, so the input is charged, not the output.
		// There was no upstream status to record.
		o.Units = metering.Units{InputTokens: est.Units.InputTokens, Characters: est.Units.Characters}
		o.Status = -1
		return o
	}
	if h.CostHeader != "" {
		if c, err := metering.ParseCredits(cw.cost); err == nil && c >= 0 && c <= metering.MaxCredits {
			o.Cost = &c
		} else {
			h.log.Warn("upstream cost header missing or not a credit amount; charging the reservation",
				zap.String("header", h.CostHeader), zap.Int("status", cw.status), zap.Int("value_bytes", len(cw.cost)))
			reserved := res.Reserved
			o.Cost = &reserved
		}
		return o
	}
	o.Units = unitsUsed(est, cw)
	if !cw.usage.found && !cw.sse && cw.status < 400 && est.Kind != epSpeech && est.Kind != epImages {
		h.log.Debug("no usage in the upstream response; charging the estimate", zap.Int("status", cw.status))
		if est.AudioUnknown != "" {
			// A transcription answered without usage (text, srt, vtt)
			// whose file could not be measured: the route's cap.
			o.Note = metering.CleanText("audio duration unknown, charged audio_seconds: "+est.AudioUnknown, metering.MaxNoteLength)
		}
	}
	return o
}

// unitsUsed is the usage of a response that was delivered (fully or in part).
func unitsUsed(est *estimate, cw *capture) metering.Units {
	u := cw.usage
	switch {
	case est.Kind == epSpeech && cw.status < 400:
		// Speech answers with audio, no usage: its input is exact.
		return est.Units
	case u.found:
		used := metering.Units{InputTokens: u.inputTokens, OutputTokens: u.outputTokens, AudioMillis: u.audioMillis}
		if est.Kind == epImages {
			used.Images = est.Units.Images
			if u.hasImages {
				used.Images = u.images
			}
		}
		return used
	case cw.status >= 400:
		// Refused by the upstream (bad request, rate limited): nothing used.
		return metering.Units{}
	case cw.sse:
		// No usage chunk (client gone, or an upstream that ignores
		// include_usage): the prompt, and the text delivered so far.
		return metering.Units{InputTokens: est.Units.InputTokens, OutputTokens: (cw.streamedBytes + bytesPerToken - 1) / bytesPerToken}
	case est.Kind == epImages && u.hasImages:
		return metering.Units{InputTokens: est.Units.InputTokens, Images: u.images}
	}
	return est.Units
}

// settle records what the request used and answers the balance after
// it (ok false when it could not be recorded now, or was already). When
// Redis cannot be reached the settlement is retried in the background
// until it is recorded (the sweeper would charge the estimate when the
// lease ran out).
func (h *Handler) settle(res *metering.Reservation, o metering.Outcome) (remaining metering.Credits, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	sr, err := h.engine.SettleEventually(ctx, res, o)
	if err != nil {
		h.log.Error("settle failed; retrying while Redis is unavailable, else the sweeper settles the reservation when its lease ends",
			zap.String("reservation", res.ID), zap.Error(err))
		return 0, false
	}
	if sr.Overrun > 0 {
		// The reservation is an upper bound of what the request allows, so
		// this means the upstream reported more than its limits (or served
		// a dearer model); the event shows cost above reserved.
		h.log.Warn("the settled cost exceeded the reservation",
			zap.String("reservation", res.ID), zap.String("model", res.Model), zap.String("served_model", o.ServedModel),
			zap.Int64("input_units", o.Units.InputTokens), zap.Int64("output_units", o.Units.OutputTokens),
			zap.Stringer("reserved", res.Reserved), zap.Stringer("overrun", sr.Overrun), zap.Stringer("shortfall", sr.Shortfall))
	}
	return sr.Remaining, !sr.AlreadySettled
}

// renewWhileServing keeps the reservation's lease alive during a long
// response (a stream can outlast any fixed lease) by renewing it every
// third of the lease. A timer, not a goroutine per request: most requests
// end long before their first renewal is due. The returned stop is
// idempotent, and no renewal starts after it returns.
func (h *Handler) renewWhileServing(res *metering.Reservation) (stop func()) {
	rn := &renewal{h: h, res: res, every: h.lease / 3}
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.timer = time.AfterFunc(rn.every, rn.renew)
	return rn.stop
}

// renewal is one response's lease renewal: its state in one allocation
// rather than one per variable two closures would share.
type renewal struct {
	h       *Handler
	res     *metering.Reservation
	every   time.Duration
	mu      sync.Mutex
	stopped bool
	timer   *time.Timer
}

func (rn *renewal) renew() {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	if err := rn.h.engine.RenewLease(ctx, rn.res, rn.h.lease); err != nil {
		rn.h.log.Warn("could not renew a reservation's lease", zap.String("reservation", rn.res.ID), zap.Error(err))
	}
	cancel()
	rn.mu.Lock()
	if !rn.stopped {
		rn.timer.Reset(rn.every)
	}
	rn.mu.Unlock()
}

func (rn *renewal) stop() {
	rn.mu.Lock()
	rn.stopped = true
	rn.timer.Stop()
	rn.mu.Unlock()
}

var errBodyTooLarge = errors.New("request body too large")

// readBody reads the whole request body, at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, errBodyTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// setBody restores (or replaces) the body sent upstream, and its
// Content-Type when the body was rebuilt ("" keeps it).
func setBody(r *http.Request, b []byte, contentType string) {
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
}

func isMultipart(contentType string) bool {
	// JSON bodies ("application/json…", any case) skip the parser and its
	// allocations: a type starting so can never parse as multipart.
	const app = "application/"
	if len(contentType) >= len(app) && strings.EqualFold(contentType[:len(app)], app) {
		return false
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	return strings.HasPrefix(mt, "multipart/")
}
