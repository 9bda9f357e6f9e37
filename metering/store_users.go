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

// lockUserByName locks a user's row for the rest of the transaction, so
// concurrent admin changes to one user run one after the other, and reads it.
func lockUserByName(ctx context.Context, tx pgx.Tx, username string) (User, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE username = $1 FOR UPDATE`, username); err != nil {
		return User{}, err
	}
	return getUserByName(ctx, tx, username)
}
