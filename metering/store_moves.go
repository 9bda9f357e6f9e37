package metering

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

func insertPendingMove(ctx context.Context, q querier, m pendingMove) error {
	_, err := q.Exec(ctx, `INSERT INTO pending_moves (move_id, user_id, from_project, to_project, new_version, actor, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.id, m.userID, m.fromProject, m.toProject, m.newVersion, m.actor, m.at)
	return err
}

func deletePendingMove(ctx context.Context, q querier, id string) (bool, error) {
	tag, err := q.Exec(ctx, `DELETE FROM pending_moves WHERE move_id = $1`, id)
	return tag.RowsAffected() == 1, err
}

// pendingMovesBefore lists up to limit moves begun before t, oldest first.
func pendingMovesBefore(ctx context.Context, q querier, t time.Time, limit int) ([]pendingMove, error) {
	rows, err := q.Query(ctx, `SELECT move_id, user_id, from_project, to_project, new_version, actor, created_at
		FROM pending_moves WHERE created_at < $1 ORDER BY created_at LIMIT $2`, t, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingMove, error) {
		var m pendingMove
		err := r.Scan(&m.id, &m.userID, &m.fromProject, &m.toProject, &m.newVersion, &m.actor, &m.at)
		return m, err
	})
}

// setUserProject commits a move in Postgres that Redis applied already
// (move_shards.go: a gateway died between the two).
func setUserProject(ctx context.Context, tx pgx.Tx, userID, projectID, version int64) error {
	var project *int64
	if projectID != 0 {
		project = &projectID
	}
	_, err := tx.Exec(ctx, `UPDATE users SET project_id = $2, version = $3, updated_at = now() WHERE id = $1`,
		userID, project, version)
	return err
}
