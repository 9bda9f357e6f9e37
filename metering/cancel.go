package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// A Redis call whose answer is lost (a timeout, a broken connection) may or
// may not have run: Redis can be stalled with the command in its socket and
// run it seconds later. The gateway answers such a request 503, "not
// forwarded", so it must not stay charged: the charge or reservation is
// cancelled. The cancel scripts either undo what ran or leave a marker
// that refuses the command should it still arrive, so the outcome is
// "not charged" whichever runs first. Cancelling is idempotent and is
// retried (repairs.go) until Redis answers.

var (
	cancelChargeScript  = mustScript("cancel_charge.lua")
	cancelReserveScript = mustScript("cancel_reserve.lua")
)

// cancelMarkerTTL is how long a cancelled operation's marker refuses a
// late arrival of its command: far longer than a command can wait in a
// socket (Linux gives up retransmitting after about 15 minutes) or in a
// briefly stalled Redis.
const cancelMarkerTTL = 24 * time.Hour

// cancelNote is the note of the events that undo a lost operation.
const cancelNote = "cancelled: the gateway lost Redis's answer and refused the request"

// lostCharge is a tracked charge whose answer did not arrive.
type lostCharge struct {
	id                  string
	request             string // the charge's request label, for the void event
	userID              int64
	projectID           int64
	shard               *ShardKeys
	userKey, projectKey string
	flightKey           string
	deadline            int64 // the lease deadline it was sent with (its in-flight score)
}

// cancelChargeLater queues the cancellation of a lost charge.
func (e *Engine) cancelChargeLater(l lostCharge) {
	e.log.Warn("a charge's answer was lost; cancelling it", zap.String("charge", l.id))
	e.repairs.add("cancel charge "+l.id, func(ctx context.Context) error { return e.cancelCharge(ctx, l) })
}

// cancelCharge undoes a lost charge or makes sure it never runs.
func (e *Engine) cancelCharge(ctx context.Context, l lostCharge) error {
	pkey := l.projectKey
	if l.projectID == 0 {
		pkey = l.userKey
	}
	for attempt := 0; attempt < 3; attempt++ {
		c := getCall(cancelChargeScript)
		c.Keys = append(c.Keys, l.userKey, pkey, l.shard.Events(), l.flightKey, l.shard.Reservation(l.id))
		c.Args = append(c.Args, l.id, l.deadline, e.cfg.Now().UnixMilli(), int64(cancelMarkerTTL/time.Second),
			l.userID, cancelNote, l.request)
		err := e.runner.Run(ctx, c)
		res := append([]int64(nil), c.Res...)
		putCall(c)
		if err != nil {
			return err
		}
		switch {
		case len(res) >= 1 && res[0] == scriptOK:
			return nil
		case len(res) >= 2 && res[0] == 2:
			e.log.Info("lost charge undone", zap.String("charge", l.id), zap.Stringer("refunded", Credits(res[1])))
			return nil
		case len(res) >= 1 && res[0] == scriptNoUser:
			if _, _, err := e.loadUser(ctx, l.userID); err != nil {
				return err
			}
		case len(res) >= 1 && res[0] == scriptNoProject:
			if err := e.loadProject(ctx, l.projectID); err != nil {
				return err
			}
		default:
			return fmt.Errorf("cancel charge script answered %v", res)
		}
	}
	return fmt.Errorf("%w: cancel of charge %s did not finish after loading its user", ErrUnavailable, l.id)
}

// cancelReserveLater queues the cancellation of a lost reservation: it
// never runs, or it is settled as a refund.
func (e *Engine) cancelReserveLater(r *Reservation) {
	e.log.Warn("a reservation's answer was lost; cancelling it", zap.String("reservation", r.ID))
	e.repairs.add("cancel reservation "+r.ID, func(ctx context.Context) error {
		c := getCall(cancelReserveScript)
		c.Keys = append(c.Keys, r.shard.Reservation(r.ID))
		c.Args = append(c.Args, int64(cancelMarkerTTL/time.Second))
		err := e.runner.Run(ctx, c)
		ran := len(c.Res) >= 1 && c.Res[0] == 1
		putCall(c)
		if err != nil || !ran {
			return err
		}
		_, err = e.settle(ctx, settleArgs{id: r.ID, userID: r.UserID, projectID: r.projectID, shard: r.shard,
			userKey: r.userKey, projectKey: r.projectKey, flightKey: r.flightKey, status: -1, note: cancelNote})
		return err
	})
}

// SettleEventually settles like Settle; when Redis cannot be reached it
// keeps retrying in the background until the settlement is recorded
// (settling is idempotent), so a brief outage does not leave the request
// in flight until its lease ends and the sweeper charges the estimate.
func (e *Engine) SettleEventually(ctx context.Context, r *Reservation, o Outcome) (SettleResult, error) {
	res, err := e.Settle(ctx, r, o)
	if err != nil && errors.Is(err, ErrUnavailable) {
		e.repairs.add("settle "+r.ID, func(ctx context.Context) error {
			_, err := e.Settle(ctx, r, o)
			return err
		})
	}
	return res, err
}

// WaitForRepairs blocks until no queued Redis work remains (see
// repairs.go) or ctx ends: for tests and orderly shutdown.
func (e *Engine) WaitForRepairs(ctx context.Context) error { return e.repairs.wait(ctx) }
