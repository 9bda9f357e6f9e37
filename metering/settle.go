package metering

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Outcome is what a reserved request turned out to use.
type Outcome struct {
	Units    Units    // actual usage (from upstream usage or counted)
	Cost     *Credits // when set, the actual cost (cost_header); else Price.Cost(Units)
	Refund   bool     // upstream failed: refund everything
	Status   int      // upstream HTTP status (0: connection failure; < 0: none, e.g. the client left first)
	Duration time.Duration
	// ServedModel is the model the upstream says it served ("" unknown).
	// When it differs from the reserved model and has a price, the usage
	// is charged at the higher of the two prices; the event records it.
	ServedModel string
	// Note is recorded with the settlement (CleanText it first): e.g. why
	// a transcription was charged the route's cap.
	Note string
}

// SettleResult is what a settlement did. Charged is what the request cost
// and was collected (reserved - refunded - forfeited + overrun); Refunded
// went back to the buckets; Overrun was taken beyond the reservation;
// Shortfall is the part of the cost the buckets could not cover; Forfeited
// was not given back because its allowance period had ended.
type SettleResult struct {
	Charged, Refunded, Overrun, Shortfall, Remaining Credits
	Forfeited                                        Credits
	// AlreadySettled: the reservation had been settled (or swept) before;
	// this call changed nothing and the amounts are zero.
	AlreadySettled bool
}

// settleArgs is one settlement as settle.lua takes it.
type settleArgs struct {
	id                  string
	userID, projectID   int64
	shard               *ShardKeys
	userKey, projectKey string
	flightKey           string
	cost                int64 // -1: the reserved amount
	in, out             int64
	status              int // < 0: unknown
	duration            time.Duration
	note                string
	servedModel         string // "" when the same as the reserved model, or unknown
}

// Settle finishes a reservation with the request's outcome. Settling a
// reservation again is a no-op that answers AlreadySettled.
func (e *Engine) Settle(ctx context.Context, r *Reservation, o Outcome) (SettleResult, error) {
	if r == nil || r.Status != Reserved || r.ID == "" {
		return SettleResult{}, invalid("reservation", "not a reservation that was taken")
	}
	// The upstream names the model it served, which is its text, not ours.
	served := CleanText(o.ServedModel, MaxModelName)
	if served == r.Model {
		served = ""
	}
	var cost Credits
	switch {
	case o.Refund:
	case o.Cost != nil:
		cost = *o.Cost
		if cost < 0 || cost > MaxCredits {
			return SettleResult{}, invalid("cost", fmt.Sprintf("%d out of range", cost))
		}
	default:
		cost = r.Price.Cost(o.Units)
		if served != "" && ValidModel(served) {
			// Served something else than was priced: the dearer price.
			p, _, ok, err := e.PriceFor(ctx, served)
			if err != nil {
				return SettleResult{}, err
			}
			if ok {
				cost = max(cost, p.Cost(o.Units))
			}
		}
	}
	u := o.Units
	return e.settle(ctx, settleArgs{id: r.ID, userID: r.UserID, projectID: r.projectID, shard: r.shard, userKey: r.userKey,
		projectKey: r.projectKey, flightKey: r.flightKey, cost: int64(cost),
		// The model says which unit applies; a request uses one kind of each.
		in:     u.InputTokens + u.Characters + u.AudioMillis,
		out:    u.OutputTokens + u.Images,
		status: o.Status, duration: o.Duration, servedModel: served, note: CleanText(o.Note, MaxNoteLength)})
}

// settle runs settle.lua, loading the user when Redis lacks it; a user
// gone from Postgres too (deleted after its lease ran out) ends the
// reservation without touching balances.
func (e *Engine) settle(ctx context.Context, a settleArgs) (SettleResult, error) {
	orphan := "0"
	for attempt := 0; attempt < 3; attempt++ {
		c := getCall(settleScript)
		c.Keys = append(c.Keys, a.userKey, a.projectKey, a.shard.Events(), a.flightKey,
			a.shard.Reservation(a.id), a.shard.Leases())
		status := ""
		if a.status >= 0 {
			status = strconv.Itoa(a.status)
		}
		// Unboxed arguments (Str, Int): no allocation per argument.
		c.Int(e.cfg.Now().UnixMilli())
		c.Str(a.id)
		c.Int(a.cost)
		c.Int(a.in)
		c.Int(a.out)
		c.Str(status)
		c.Int(a.duration.Milliseconds())
		c.Str(a.note)
		c.Str(orphan)
		c.Str(a.servedModel)
		err := e.runner.Run(ctx, c)
		// Copied out before the call goes back to the pool, into a buffer
		// on the stack (the answer has 7 fields).
		var buf [8]int64
		res := append(buf[:0], c.Res...)
		putCall(c)
		if err != nil {
			return SettleResult{}, err
		}
		switch {
		case len(res) >= 7 && res[0] == scriptOK:
			sr := SettleResult{Charged: Credits(res[1]), Refunded: Credits(res[2]), Overrun: Credits(res[3]),
				Shortfall: Credits(res[4]), Remaining: Credits(res[5]), Forfeited: Credits(res[6])}
			e.cfg.Metrics.reservationSettled(sr)
			return sr, nil
		case len(res) >= 1 && res[0] == 1:
			return SettleResult{AlreadySettled: true}, nil
		case len(res) >= 1 && res[0] == scriptNoUser:
			_, found, err := e.loadUser(ctx, a.userID)
			if err != nil {
				return SettleResult{}, err
			}
			if !found {
				orphan = "1"
			}
		case len(res) >= 1 && res[0] == scriptNoProject:
			if err := e.loadProject(ctx, a.projectID); err != nil {
				return SettleResult{}, err
			}
		default:
			return SettleResult{}, fmt.Errorf("settle script answered %v", append([]int64(nil), res...))
		}
	}
	return SettleResult{}, fmt.Errorf("%w: settle of %s did not finish after loading its user", ErrUnavailable, a.id)
}
