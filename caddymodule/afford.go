package caddymodule

import (
	"context"

	"github.com/tollgate/tollgate/metering"
)

// reserve takes the estimate. When the client set no output limit and the
// user cannot afford the route's cap, it reserves the largest output the
// user can afford instead (at least min_output_tokens per choice), which
// upstreamBody then sends as the limit: a small balance still buys a
// cheap request. Each attempt is one atomic reservation, so nothing is
// ever over-reserved; if the balance moves between attempts, the next one
// is priced from the new balance once more, then the request is refused.
func (h *Handler) reserve(ctx context.Context, req metering.ReserveRequest, est *estimate) (*metering.Reservation, error) {
	req.Estimate = est.Units
	res, err := h.engine.Reserve(ctx, req)
	for try := 0; try < 2 && err == nil && res.Status == metering.Insufficient && est.adjustable(); try++ {
		k := affordableOutput(res.Price, est.Units, est.choices, est.perChoice, res.Remaining)
		if k < h.minOutput {
			break
		}
		est.setPerChoice(k)
		req.Estimate = est.Units
		res, err = h.engine.Reserve(ctx, req)
	}
	return res, err
}

// affordableOutput is the largest output per choice, at most most, whose
// cost with the rest of u is within budget (0 when not even none is).
// Price.Cost never decreases as output grows, so a binary search finds it.
func affordableOutput(p metering.Price, u metering.Units, choices, most int64, budget metering.Credits) int64 {
	u.OutputTokens = 0
	if p.Cost(u) > budget {
		return 0
	}
	lo, hi := int64(0), most
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		u.OutputTokens = mid * choices
		if p.Cost(u) <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
