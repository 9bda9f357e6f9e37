package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const userColumns = `u.id, u.username, coalesce(u.project_id, 0), coalesce(p.name, ''), u.status = 'active',
	u.awarded, u.purchased, u.allowance_remaining, u.allowance_period, u.pool_used,
	u.monthly_grant, u.grant_month, u.partner, u.version, u.last_activity_at, u.created_at,
	k.lookup_hash, k.display_prefix, k.sealed, k.created_at, k.expires_at,
	coalesce(p.allowance_period, 'none'), coalesce(p.timezone, 'UTC'), ` + parkedSQL

const userFrom = ` FROM users u
	LEFT JOIN projects p ON p.id = u.project_id
	LEFT JOIN api_keys k ON k.user_id = u.id AND k.revoked_at IS NULL`

// parkedSQL reads, for the user row aliased u, its parked entries in the
// form of the user hash's 'x' field: "<project id>:<allowance>:<allowance
// period start>:<pool drawn>", joined by ','.
const parkedSQL = `coalesce((SELECT string_agg(s.project_id || ':' || s.allowance_remaining || ':' ||
		s.allowance_period || ':' || s.pool_used, ',' ORDER BY s.project_id)
	FROM parked_allowances s WHERE s.user_id = u.id AND s.parked > 0), '')`

func scanUser(row pgx.Row) (User, error) {
	var u User
	var hash []byte
	var prefix *string
	var keyCreated *time.Time
	var sealed []byte
	var expires *time.Time
	err := row.Scan(&u.ID, &u.Username, &u.ProjectID, &u.ProjectName, &u.Active,
		&u.Awarded, &u.Purchased, &u.AllowanceRemaining, &u.AllowancePeriod, &u.PoolUsed,
		&u.MonthlyGrant, &u.GrantMonth, &u.Partner, &u.Version, &u.LastActivityAt, &u.CreatedAt,
		&hash, &prefix, &sealed, &keyCreated, &expires, &u.projectPeriod, &u.projectTZ, &u.parked)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, ErrNotFound
	}
	if err == nil && prefix != nil {
		u.Key = &APIKeyInfo{Prefix: *prefix, Sealed: sealed, CreatedAt: *keyCreated, ExpiresAt: expires}
		copy(u.Key.Hash[:], hash)
	}
	return u, err
}

func getUserByName(ctx context.Context, q querier, name string) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+userFrom+` WHERE u.username = $1`, name))
	if errors.Is(err, ErrNotFound) {
		return u, noUser(name)
	}
	if err != nil {
		return u, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

func getUserByID(ctx context.Context, q querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+userFrom+` WHERE u.id = $1`, id))
	if err != nil {
		return u, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// insertUser creates the user row with zero balances; money arrives through
// events afterwards, like every other balance change.
func insertUser(ctx context.Context, q querier, u User) (int64, error) {
	var project *int64
	if u.ProjectID != 0 {
		project = &u.ProjectID
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO users (username, project_id, monthly_grant, grant_month, partner)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		u.Username, project, u.MonthlyGrant, u.GrantMonth, u.Partner).Scan(&id)
	if isUniqueViolation(err) {
		return 0, usernameTaken(u.Username)
	}
	return id, err
}

// setUserStatus changes the status and bumps the version; it returns the new version.
func setUserStatus(ctx context.Context, q querier, id int64, active bool) (int64, error) {
	status := "inactive"
	if active {
		status = "active"
	}
	var v int64
	err := q.QueryRow(ctx, `UPDATE users SET status = $2, version = version + 1, updated_at = now()
		WHERE id = $1 RETURNING version`, id, status).Scan(&v)
	return v, err
}

func bumpUserVersion(ctx context.Context, q querier, id int64) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `UPDATE users SET version = version + 1, updated_at = now()
		WHERE id = $1 RETURNING version`, id).Scan(&v)
	return v, err
}

// queryUsers runs a query selecting userColumns and scans every row.
func queryUsers(ctx context.Context, q querier, sql string, args ...any) ([]User, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// lockUserRows locks the rows of users by id, in id order, so two
// transactions locking the same users (a transfer each way) cannot deadlock.
func lockUserRows(ctx context.Context, tx pgx.Tx, ids ...int64) error {
	_, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	return err
}

// deleteUserRow removes a user's row (its events keep the name as text).
func deleteUserRow(ctx context.Context, q querier, id int64) error {
	_, err := q.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
	return err
}

// setLiveKeyExpiry changes the expiry of the user's live key.
func setLiveKeyExpiry(ctx context.Context, q querier, userID int64, expires *time.Time) error {
	_, err := q.Exec(ctx, `UPDATE api_keys SET expires_at = $2 WHERE user_id = $1 AND revoked_at IS NULL`,
		userID, expires)
	return err
}

// updateUserRow writes a patched user's name, project, grant and partner
// flag and bumps its version.
func updateUserRow(ctx context.Context, q querier, u User) error {
	var project *int64
	if u.ProjectID != 0 {
		project = &u.ProjectID
	}
	_, err := q.Exec(ctx, `UPDATE users SET username = $2, project_id = $3, monthly_grant = $4, partner = $5,
		version = version + 1, updated_at = now() WHERE id = $1`,
		u.ID, u.Username, project, u.MonthlyGrant, u.Partner)
	if isUniqueViolation(err) {
		return usernameTaken(u.Username)
	}
	return err
}

// lockUserByName locks a user's row for the rest of the transaction, so
// concurrent admin changes to one user run one after the other, and reads it.
func lockUserByName(ctx context.Context, tx pgx.Tx, username string) (User, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE username = $1 FOR UPDATE`, username); err != nil {
		return User{}, err
	}
	return getUserByName(ctx, tx, username)
}
