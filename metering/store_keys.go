package metering

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// insertKey revokes the user's live key, if any, and stores the new one.
func insertKey(ctx context.Context, q querier, userID int64, k APIKeyInfo) error {
	if _, err := q.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `INSERT INTO api_keys (user_id, lookup_hash, display_prefix, sealed, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, userID, k.Hash[:], k.Prefix, k.Sealed, k.CreatedAt, k.ExpiresAt)
	return err
}

// forEachLiveKey streams every live key hash with its user id.
func forEachLiveKey(ctx context.Context, q querier, fn func(h []byte, userID, projectID int64) error) error {
	rows, err := q.Query(ctx, `SELECT k.lookup_hash, k.user_id, coalesce(u.project_id, 0)
		FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.revoked_at IS NULL`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var h []byte
	var id, pid int64
	_, err = pgx.ForEachRow(rows, []any{&h, &id, &pid}, func() error { return fn(h, id, pid) })
	return err
}

// userProjectID reads a user's project id (0: none).
func userProjectID(ctx context.Context, q querier, userID int64) (int64, error) {
	var pid int64
	err := q.QueryRow(ctx, `SELECT coalesce(project_id, 0) FROM users WHERE id = $1`, userID).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	return pid, err
}

func expiresMillis(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}
