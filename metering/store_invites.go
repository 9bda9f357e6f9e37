package metering

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// inviteRow is an invite as stored, less its token digest.
type inviteRow struct {
	Invite
	UserID int64
}

func insertInvite(ctx context.Context, q querier, inv inviteRow, digest string) error {
	_, err := q.Exec(ctx, `INSERT INTO invites (id, user_id, token_sha256, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, inv.ID, inv.UserID, digest, inv.CreatedBy, inv.CreatedAt, inv.ExpiresAt)
	return err
}

// pendingWhere selects the invites that can still be claimed at @now.
const pendingWhere = ` claimed_at IS NULL AND revoked_at IS NULL AND expires_at > @now`

// listPendingInvites returns the user's pending invites at now, newest first.
func listPendingInvites(ctx context.Context, q querier, userID int64, now time.Time) ([]Invite, error) {
	rows, err := q.Query(ctx, `SELECT id, created_at, expires_at, created_by FROM invites
		WHERE user_id = @user AND`+pendingWhere+` ORDER BY created_at DESC, id DESC`,
		pgx.NamedArgs{"user": userID, "now": now})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Invite, error) {
		var inv Invite
		err := row.Scan(&inv.ID, &inv.CreatedAt, &inv.ExpiresAt, &inv.CreatedBy)
		return inv, err
	})
}

// countPendingInvites counts the user's pending invites at now.
func countPendingInvites(ctx context.Context, q querier, userID int64, now time.Time) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM invites WHERE user_id = @user AND`+pendingWhere,
		pgx.NamedArgs{"user": userID, "now": now}).Scan(&n)
	return n, err
}

// revokePendingInvite marks the user's pending invite id revoked at now;
// false when there is no such pending invite.
func revokePendingInvite(ctx context.Context, q querier, userID int64, id string, now time.Time) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE invites SET revoked_at = @now WHERE id = @id AND user_id = @user AND`+pendingWhere,
		pgx.NamedArgs{"id": id, "user": userID, "now": now})
	return tag.RowsAffected() == 1, err
}

// inviteUser returns the id of the user the invite with this token digest
// is for, whatever the invite's state; ErrNotFound when there is none.
func inviteUser(ctx context.Context, q querier, digest string) (int64, error) {
	var userID int64
	err := q.QueryRow(ctx, `SELECT user_id FROM invites WHERE token_sha256 = $1`, digest).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	return userID, err
}

// claimPendingInvite marks the pending invite with this digest claimed at
// now and returns its id; ErrNotFound when it is not pending (claimed,
// revoked, expired) or not the user's. Conditional, so of two claims only
// one finds it pending: the second waits for the first's row lock and,
// once the first commits, sees claimed_at set.
func claimPendingInvite(ctx context.Context, q querier, digest string, userID int64, now time.Time) (string, error) {
	var id string
	err := q.QueryRow(ctx, `UPDATE invites SET claimed_at = @now
		WHERE token_sha256 = @digest AND user_id = @user AND`+pendingWhere+` RETURNING id`,
		pgx.NamedArgs{"digest": digest, "user": userID, "now": now}).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}

// lockUserByID locks a user's row for the rest of the transaction, like
// lockUserByName, and reads it; ErrNotFound when the user is gone.
func lockUserByID(ctx context.Context, tx pgx.Tx, id int64) (User, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id); err != nil {
		return User{}, err
	}
	return getUserByID(ctx, tx, id)
}

// pendingInviteExpiry returns when the pending invite with this digest
// expires, if its user is active (a claim would succeed); ErrNotFound else.
func pendingInviteExpiry(ctx context.Context, q querier, digest string, now time.Time) (time.Time, error) {
	var expires time.Time
	err := q.QueryRow(ctx, `SELECT i.expires_at FROM invites i JOIN users u ON u.id = i.user_id
		WHERE i.token_sha256 = @digest AND u.status = 'active' AND`+pendingWhere, // users has none of its columns
		pgx.NamedArgs{"digest": digest, "now": now}).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, ErrNotFound
	}
	return expires, err
}
