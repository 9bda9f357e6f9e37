package metering

import (
	"context"
	"time"
)

// pendingTransfer is a row of pending_transfers: a transfer between users
// in different shards, from before its first step until both events are
// in the ledger (transfer_shards.go).
type pendingTransfer struct {
	outID, inID string // the debit's and the credit's event ids
	from, to    int64
	amount      Credits
	actor, note string
	at          time.Time
}

func insertPendingTransfer(ctx context.Context, q querier, p pendingTransfer) error {
	_, err := q.Exec(ctx, `INSERT INTO pending_transfers (out_id, in_id, from_user, to_user, amount, actor, note, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, p.outID, p.inID, p.from, p.to, int64(p.amount), p.actor, p.note, p.at)
	return err
}

// deletePendingTransfer removes a transfer's row and reports whether it
// was there: whoever removes it records the transfer.
func deletePendingTransfer(ctx context.Context, q querier, outID string) (bool, error) {
	tag, err := q.Exec(ctx, `DELETE FROM pending_transfers WHERE out_id = $1`, outID)
	return tag.RowsAffected() == 1, err
}

// pendingTransfersBefore lists up to limit transfers begun before t,
// oldest first.
func pendingTransfersBefore(ctx context.Context, q querier, t time.Time, limit int) ([]pendingTransfer, error) {
	rows, err := q.Query(ctx, `SELECT out_id, in_id, from_user, to_user, amount, actor, note, created_at
		FROM pending_transfers WHERE created_at < $1 ORDER BY created_at LIMIT $2`, t, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pendingTransfer
	for rows.Next() {
		var p pendingTransfer
		var amount int64
		if err := rows.Scan(&p.outID, &p.inID, &p.from, &p.to, &amount, &p.actor, &p.note, &p.at); err != nil {
			return nil, err
		}
		p.amount = Credits(amount)
		out = append(out, p)
	}
	return out, rows.Err()
}

// hasPendingTransfer reports whether a transfer from or to the user is
// between its steps.
func hasPendingTransfer(ctx context.Context, q querier, userID int64) (bool, error) {
	var found bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pending_transfers WHERE from_user = $1 OR to_user = $1)`,
		userID).Scan(&found)
	return found, err
}

// eventRecorded reports whether the ledger holds an event.
func eventRecorded(ctx context.Context, q querier, eventID string) (bool, error) {
	var found bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)`, eventID).Scan(&found)
	return found, err
}
