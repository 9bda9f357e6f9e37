package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Transfers between users whose keys are in different shards cannot be
// one script: a script touches one slot. They take three steps, each
// idempotent, so that a crash anywhere leaves a transfer that is finished
// later exactly once:
//
//  0. the transfer is written to pending_transfers (Postgres) with the
//     ids of its two events;
//  1. the debit: transfer_step.lua in the source's shard takes the
//     amount and appends the debit's event, unless its marker says it ran;
//  2. the credit: the same in the destination's shard;
//  3. one transaction removes the row and records both events and the
//     audit entries; if the row is gone another gateway did it.
//
// A step's marker lives in Redis; a Redis that failed over may have lost
// it along with the step, or only after the step's event reached the
// ledger: a step whose event the ledger holds is never run again.
// The sweeper finishes the transfers a crashed gateway left
// (finishPendingTransfers). Should the credit be refused (the
// destination was deleted meanwhile, or would pass the bound), the
// source is credited back, under a third event id.

var transferStepScript = mustScript("transfer_step.lua")

// transferMarkerTTL is how long a step's marker lives: far longer than a
// gateway takes to come back or a sweeper to run.
const transferMarkerTTL = 7 * 24 * time.Hour

// pendingTransferGrace is how old a pending transfer must be before the
// sweeper finishes it: younger ones are still their gateway's to finish.
const pendingTransferGrace = time.Minute

// Answers of transfer_step.lua besides scriptOK, scriptNoUser and
// scriptDeleted.
const (
	stepInsufficient = 1
	stepTooLarge     = 2
	stepAlreadyDone  = 3
)

// transferAcrossShards is transfer for users in different shards.
func (e *Engine) transferAcrossShards(ctx context.Context, actor string, src, dst User, amount Credits, note string) error {
	p := pendingTransfer{outID: e.ids.Next(), inID: e.ids.Next(), from: src.ID, to: dst.ID, amount: amount,
		actor: actor, note: note, at: time.UnixMilli(e.cfg.Now().UnixMilli()).UTC()}
	if err := insertPendingTransfer(ctx, e.db, p); err != nil {
		return fmt.Errorf("record transfer: %w", err)
	}
	return e.finishTransfer(ctx, p, true)
}

// finishTransfer runs a pending transfer's steps (those not yet run) and
// records it. live is the gateway that began it (a crash test stops it
// between the steps).
func (e *Engine) finishTransfer(ctx context.Context, p pendingTransfer, live bool) error {
	src, err := getUserByID(ctx, e.db, p.from)
	if err != nil {
		return err // DeleteUser refuses while a transfer is pending
	}
	dst, err := getUserByID(ctx, e.db, p.to)
	if err != nil {
		return err
	}
	status, balance, err := e.transferStep(ctx, src, -p.amount, p.outID, p)
	if err != nil {
		return err
	}
	switch status {
	case scriptOK, stepAlreadyDone:
	case stepInsufficient:
		return e.dropPendingTransfer(ctx, p, refuse(ErrInsufficient,
			"The awarded balance of user %q is %s, less than the %s to transfer.", src.Username, Credits(balance), p.amount))
	case scriptDeleted:
		return e.dropPendingTransfer(ctx, p, noUser(src.Username))
	default:
		return fmt.Errorf("transfer step answered %d", status)
	}
	if live {
		// Debited, not yet credited: where a crash test kills the gateway.
		failpoint(failpointTransferAfterDebit)
	}
	events := []Event{transferEvent(p, p.outID, src, -p.amount)}
	var refusal error
	status, balance, err = e.transferStep(ctx, dst, p.amount, p.inID, p)
	if err != nil {
		return begun(p, err)
	}
	switch status {
	case scriptOK, stepAlreadyDone:
		events = append(events, transferEvent(p, p.inID, dst, p.amount))
	case stepTooLarge, scriptDeleted:
		// The source gets its credits back.
		refusal = noUser(dst.Username)
		if status == stepTooLarge {
			refusal = invalid("amount", fmt.Sprintf("would take %q's awarded credits above the maximum %s", dst.Username, MaxCredits))
		}
		back := p.outID + ":r"
		status, _, err = e.transferStep(ctx, src, p.amount, back, p)
		if err != nil {
			return begun(p, err)
		}
		if status != scriptOK && status != stepAlreadyDone {
			return fmt.Errorf("%w: transfer %s: giving %s back to %q answered %d; the sweeper tries again",
				ErrUnavailable, p.outID, p.amount, src.Username, status)
		}
		events = append(events, transferEvent(p, back, src, p.amount))
	default:
		return fmt.Errorf("transfer step answered %d", status)
	}
	details := map[string]any{"from": src.Username, "to": dst.Username, "amount": p.amount, "note": p.note}
	err = e.applyWithRetry(ctx, func(tx pgx.Tx) error {
		mine, err := deletePendingTransfer(ctx, tx, p.outID)
		if err != nil || !mine {
			return err // !mine: another gateway recorded it
		}
		if err := lockUserRows(ctx, tx, src.ID, dst.ID); err != nil {
			return err
		}
		if _, err := e.applyEvents(ctx, tx, events); err != nil {
			return err
		}
		if refusal != nil {
			return nil
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: p.actor, Action: "transfer.out", Target: src.Username, Details: details}); err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: p.actor, Action: "transfer.in", Target: dst.Username, Details: details})
	})
	if err != nil {
		return fmt.Errorf("%w: transfer %s made in Redis but not yet recorded in Postgres (the reconciler and the sweeper will; do not retry): %v",
			ErrUnavailable, p.outID, err)
	}
	return refusal
}

// begun is the error of a transfer whose debit was made: the sweeper
// finishes it, and the caller must not make it again.
func begun(p pendingTransfer, err error) error {
	return fmt.Errorf("%w: transfer %s begun (debited) but not finished; the sweeper finishes it within minutes, do not retry: %v",
		ErrUnavailable, p.outID, err)
}

// dropPendingTransfer removes a transfer none of whose steps ran, and
// returns why.
func (e *Engine) dropPendingTransfer(ctx context.Context, p pendingTransfer, why error) error {
	if _, err := deletePendingTransfer(ctx, e.db, p.outID); err != nil {
		return errors.Join(why, fmt.Errorf("forget transfer %s: %w", p.outID, err))
	}
	return why
}

// transferEvent is the ledger event of one step.
func transferEvent(p pendingTransfer, id string, u User, delta Credits) Event {
	return Event{ID: id, Kind: KindTransfer, At: p.at, UserID: u.ID, Username: u.Username, ProjectID: u.ProjectID,
		ProjectName: u.ProjectName, Awarded: delta, Actor: p.actor, Note: p.note}
}

// transferStep runs transfer_step.lua for user u, loading the user into
// Redis when it asks; a step whose event is in the ledger already ran.
func (e *Engine) transferStep(ctx context.Context, u User, delta Credits, eventID string, p pendingTransfer) (status, balance int64, err error) {
	if done, err := eventRecorded(ctx, e.db, eventID); err != nil || done {
		return stepAlreadyDone, 0, err
	}
	sh := e.keys.ShardOf(u.ProjectID, u.ID)
	for attempt := 0; attempt < 3; attempt++ {
		c := getCall(transferStepScript)
		c.Keys = append(c.Keys, sh.User(u.ID), sh.Events(), sh.Reservation(eventID))
		c.Args = append(c.Args, int64(delta), int64(MaxCredits), eventID, p.at.UnixMilli(), p.actor, p.note,
			u.ID, u.ProjectName, int64(transferMarkerTTL/time.Second))
		err := e.runner.Run(ctx, c)
		res := append([]int64(nil), c.Res...)
		putCall(c)
		if err != nil {
			return 0, 0, err
		}
		if len(res) == 0 {
			return 0, 0, errors.New("transfer step answered nothing")
		}
		if res[0] != scriptNoUser {
			if len(res) > 1 {
				balance = res[1]
			}
			return res[0], balance, nil
		}
		if _, found, err := e.loadUser(ctx, u.ID); err != nil {
			return 0, 0, err
		} else if !found {
			return scriptDeleted, 0, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: user %q not in Redis after loading", ErrUnavailable, u.Username)
}

// finishPendingTransfers finishes the transfers their gateways left
// between steps (crashed, or lost Redis or Postgres); the sweeper runs it.
func (e *Engine) finishPendingTransfers(ctx context.Context) (int, error) {
	pending, err := pendingTransfersBefore(ctx, e.db, e.cfg.Now().Add(-pendingTransferGrace), 100)
	if err != nil {
		return 0, err
	}
	finished := 0
	var failed error
	for _, p := range pending {
		// A refusal (the source lacked the credits, a user was deleted)
		// finishes it too: the transfer is recorded as what it did. One
		// that fails is tried again at the next run; the others go on.
		err := e.finishTransfer(ctx, p, false)
		var refused *Refusal
		var bad *InvalidError
		if err != nil && !errors.As(err, &refused) && !errors.As(err, &bad) {
			failed = errors.Join(failed, fmt.Errorf("transfer %s: %w", p.outID, err))
			continue
		}
		finished++
		e.log.Warn("finished a transfer its gateway left between its steps", zap.String("transfer", p.outID),
			zap.NamedError("refused", err))
	}
	return finished, failed
}
