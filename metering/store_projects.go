package metering

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what a pool, a connection and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const projectColumns = `p.id, p.name, p.allowance_amount, p.allowance_period, p.timezone,
	p.pool_enabled, p.pool_balance, p.pool_per_user_limit, p.version, p.created_at,
	(SELECT count(*) FROM users u WHERE u.project_id = p.id)`

func scanProject(row pgx.Row) (Project, error) {
	var p Project
	var limit *int64
	var period string
	err := row.Scan(&p.ID, &p.Name, &p.AllowanceAmount, &period, &p.TimeZone,
		&p.PoolEnabled, &p.PoolBalance, &limit, &p.Version, &p.CreatedAt, &p.Users)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	p.Period = Period(period)
	if limit != nil {
		l := Credits(*limit)
		p.PoolPerUserLimit = &l
	}
	return p, err
}

func insertProject(ctx context.Context, q querier, p Project) (Project, error) {
	limit := nullCredits(p.PoolPerUserLimit)
	row := q.QueryRow(ctx, `WITH p AS (
		INSERT INTO projects (name, allowance_amount, allowance_period, timezone, pool_enabled, pool_per_user_limit)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING *)
		SELECT `+projectColumns+` FROM p`,
		p.Name, p.AllowanceAmount, string(p.Period), p.TimeZone, p.PoolEnabled, limit)
	created, err := scanProject(row)
	if isUniqueViolation(err) {
		return created, refuse(ErrConflict, "A project named %q already exists.", p.Name)
	}
	return created, err
}

func getProjectByName(ctx context.Context, q querier, name string) (Project, error) {
	p, err := scanProject(q.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects p WHERE p.name = $1`, name))
	if errors.Is(err, ErrNotFound) {
		return p, noProject(name)
	}
	if err != nil {
		return p, fmt.Errorf("project %q: %w", name, err)
	}
	return p, nil
}

func getProjectByID(ctx context.Context, q querier, id int64) (Project, error) {
	p, err := scanProject(q.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects p WHERE p.id = $1`, id))
	if err != nil {
		return p, fmt.Errorf("project %d: %w", id, err)
	}
	return p, nil
}

func listProjects(ctx context.Context, q querier) ([]Project, error) {
	rows, err := q.Query(ctx, `SELECT `+projectColumns+` FROM projects p ORDER BY p.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// lockProject reads a project with its row locked for the transaction,
// user count included (counted after the lock, so it sees every committed
// assignment).
func lockProject(ctx context.Context, tx pgx.Tx, name string) (Project, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM projects WHERE name = $1 FOR UPDATE`, name); err != nil {
		return Project{}, err
	}
	return getProjectByName(ctx, tx, name)
}

// updateProjectSettings writes the settings and bumps the version.
func updateProjectSettings(ctx context.Context, q querier, p Project) (Project, error) {
	limit := nullCredits(p.PoolPerUserLimit)
	row := q.QueryRow(ctx, `WITH p AS (
		UPDATE projects SET allowance_amount = $2, allowance_period = $3, timezone = $4,
			pool_enabled = $5, pool_per_user_limit = $6, version = version + 1, updated_at = now()
		WHERE id = $1 RETURNING *)
		SELECT `+projectColumns+` FROM p`,
		p.ID, p.AllowanceAmount, string(p.Period), p.TimeZone, p.PoolEnabled, limit)
	return scanProject(row)
}

// deleteProjectRow removes a project's row; its users must be gone.
func deleteProjectRow(ctx context.Context, q querier, id int64) error {
	_, err := q.Exec(ctx, `DELETE FROM projects WHERE id = $1`, id)
	return err
}

// allowanceRule is an allowance period and the time zone it runs in.
type allowanceRule struct{ period, timezone string }

// allowanceRules returns every distinct rule the projects use.
func allowanceRules(ctx context.Context, q querier) ([]allowanceRule, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT allowance_period, timezone FROM projects`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []allowanceRule
	for rows.Next() {
		var r allowanceRule
		if err := rows.Scan(&r.period, &r.timezone); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// listProjectMembers returns the users assigned to a project.
func listProjectMembers(ctx context.Context, q querier, projectID int64) ([]User, error) {
	return queryUsers(ctx, q, `SELECT `+userColumns+userFrom+` WHERE u.project_id = $1 ORDER BY u.id`, projectID)
}

// nullCredits is an optional amount as a nullable bigint column value.
func nullCredits(c *Credits) *int64 {
	if c == nil {
		return nil
	}
	v := int64(*c)
	return &v
}
