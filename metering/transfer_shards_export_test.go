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

// MoveOutOnlyForTest runs the first steps of a move of a user to a
// project in another shard (pending row, move_out.lua, move_in.lua) and
// stops before the patch and before Postgres commits, as a gateway killed
// there would. It returns the move's id and the version the move bumps to.
func (e *Engine) MoveOutOnlyForTest(ctx context.Context, username, project string) (string, int64, error) {
	u, err := getUserByName(ctx, e.db, username)
	if err != nil {
		return "", 0, err
	}
	p, err := getProjectByName(ctx, e.db, project)
	if err != nil {
		return "", 0, err
	}
	next := u
	next.ProjectID, next.ProjectName, next.Version = p.ID, p.Name, u.Version+1
	m := pendingMove{id: e.ids.Next(), userID: u.ID, fromProject: u.ProjectID, toProject: p.ID,
		newVersion: next.Version, actor: "test", at: e.cfg.Now()}
	if err := insertPendingMove(ctx, e.db, m); err != nil {
		return "", 0, err
	}
	return m.id, m.newVersion, e.moveSteps(ctx, m, u.Username)
}

// PendingMovesForTest counts the moves between steps.
func (e *Engine) PendingMovesForTest(ctx context.Context) (int64, error) {
	var n int64
	err := e.db.QueryRow(ctx, `SELECT count(*) FROM pending_moves`).Scan(&n)
	return n, err
}
