package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// Telling the client its balance after settlement, not after the
// reservation: a JSON response small enough to hold is held until the
// request is settled and then sent with the settled X-Credits-Remaining;
// a stream gets the settled balance as an SSE comment at its end. Redis
// being slow must not keep a response from the client, so the handler
// waits for the settlement at most settle_wait, then sends what it has
// with the reservation's figure while the settlement finishes behind it.

// meteredCall is one reserved request until it is settled, which happens
// once: at the end of its stream, or when the handler returns.
type meteredCall struct {
	h         *Handler
	est       *estimate
	res       *metering.Reservation
	cw        *capture
	repl      *caddy.Replacer // nil outside Caddy
	start     time.Time
	stopRenew func()
	settled   bool
}

// finish settles the request unless the end of its stream did, and sends
// a response held for the settlement. complete: the handler returned
// normally (no panic), so a held response is whole and may be sent.
func (m *meteredCall) finish(o metering.Outcome, complete bool) {
	switch {
	case m.settled:
	case m.cw.holding && complete:
		remaining, ok := m.settleWithin(o)
		// An error here is a client that left meanwhile: it changes
		// nothing, the request was settled from the upstream's answer.
		_ = m.cw.sendHeld(remaining, ok)
	case complete:
		// The response is out (flushed now), but it ends, for a chunked
		// one its last chunk, only when the handler returns: that too
		// waits for a slow Redis no longer than settle_wait.
		m.cw.flushOut()
		m.settleWithin(o)
	default:
		// Aborted: the client gets nothing more, whenever this returns.
		m.settled = true
		m.h.settle(m.res, o)
	}
}

// settleAtStreamEnd settles a stream whose usage is in (the capture calls
// it at [DONE] or at the Responses API's final event) and answers the
// balance after it; ok false when it did not come within settle_wait.
func (m *meteredCall) settleAtStreamEnd() (metering.Credits, bool) {
	if m.settled {
		return 0, false
	}
	m.stopRenew()
	o := m.h.outcome(m.est, m.cw, m.res, nil, false)
	o.Duration = time.Since(m.start)
	return m.settleWithin(o)
}

// settleAnswer is what a settlement running behind the handler answered.
type settleAnswer struct {
	remaining metering.Credits
	ok        bool
}

// settleWithin settles o and waits for it at most settle_wait. It answers
// the balance after the settlement, or ok false when Redis was too slow:
// the settlement then goes on in the background (on its own deadline, and
// retried while Redis is unavailable) and the response goes on without it,
// with the reservation's figure.
func (m *meteredCall) settleWithin(o metering.Outcome) (metering.Credits, bool) {
	m.settled = true
	done := make(chan settleAnswer, 1)
	h, res := m.h, m.res
	// The settlement may outlive the request: it uses the engine too.
	h.users.enter()
	go func() {
		defer h.users.leave()
		remaining, ok := h.settle(res, o)
		done <- settleAnswer{remaining, ok}
	}()
	wait := time.NewTimer(h.settleWait)
	defer wait.Stop()
	select {
	case a := <-done:
		if a.ok && m.repl != nil {
			m.repl.Set("http.metering.remaining", a.remaining.String())
		}
		return a.remaining, a.ok
	case <-wait.C:
		h.log.Warn("settlement slower than settle_wait; the response goes on with the balance after the reservation",
			zap.String("reservation", res.ID), zap.Duration("settle_wait", h.settleWait))
		return 0, false
	}
}

// required is what a refused reservation needed: its estimate, or, when
// the gateway chooses the output limit, the least it would have accepted
// (min_output_tokens per choice, or the route's cap if that is smaller).
func (h *Handler) required(res *metering.Reservation, est *estimate) metering.Credits {
	if res.Status != metering.Insufficient || !est.adjustable() {
		return res.Reserved
	}
	u := est.Units
	u.OutputTokens = min(est.perChoice, h.minOutput) * est.choices
	return res.Price.Cost(u)
}
