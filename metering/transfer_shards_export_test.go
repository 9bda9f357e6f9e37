package metering

import (
	"context"
	"time"
)

// DebitOnlyForTest begins a transfer between users in different shards
// and stops after its debit, as a gateway killed between the steps would
// (the crash test in caddymodule kills a real one there). It returns the
// debit's event id.
func (e *Engine) DebitOnlyForTest(ctx context.Context, from, to string, amount Credits) (string, error) {
	src, err := getUserByName(ctx, e.db, from)
	if err != nil {
		return "", err
	}
	dst, err := getUserByName(ctx, e.db, to)
	if err != nil {
		return "", err
	}
	p := pendingTransfer{outID: e.ids.Next(), inID: e.ids.Next(), from: src.ID, to: dst.ID, amount: amount,
		actor: "test", note: "cut short", at: time.UnixMilli(e.cfg.Now().UnixMilli()).UTC()}
	if err := insertPendingTransfer(ctx, e.db, p); err != nil {
		return "", err
	}
	_, _, err = e.transferStep(ctx, src, -amount, p.outID, p)
	return p.outID, err
}

// PendingTransfersForTest counts the transfers between steps.
func (e *Engine) PendingTransfersForTest(ctx context.Context) (int64, error) {
	var n int64
	err := e.db.QueryRow(ctx, `SELECT count(*) FROM pending_transfers`).Scan(&n)
	return n, err
}
