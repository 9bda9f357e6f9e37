package metering

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Sort keys as SQL, written exactly as the indexes of
// migrations/003_user_list.up.sql, so the planner uses them.
const (
	sqlPersonal = `(u.awarded + u.purchased)`
	sqlActivity = `coalesce(u.last_activity_at, '-infinity'::timestamptz)`
)

// userListSQL builds the page query: filters, then the keyset condition
// "after the cursor row", then the order with username as tie-breaker.
// For descending keys the condition is written as `key <= k AND (key < k
// OR username > u)`: the first part is an index range bound, the second
// the exact tie-break (a row comparison cannot mix directions).
func userListSQL(q *UserQuery, c *userCursor, now time.Time) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Search != "" {
		where = append(where, `u.username LIKE `+arg("%"+likeEscape(q.Search)+"%"))
	}
	switch {
	case q.Project == ProjectNone:
		where = append(where, `u.project_id IS NULL`)
	case q.Project != "":
		where = append(where, `u.project_id = (SELECT id FROM projects WHERE name = `+arg(q.Project)+`)`)
	}
	if q.Status != "" {
		where = append(where, `u.status = `+arg(q.Status))
	}
	if q.zero != nil {
		where = append(where, q.zero.sql(arg))
	}
	where = append(where, keyFilterSQL(q, now, arg)...)
	order := `u.username`
	keyset := func(expr string, k func() any) {
		if c == nil {
			return
		}
		ka, ua := arg(k()), arg(c.username)
		where = append(where, fmt.Sprintf(`%s <= %s AND (%s < %s OR u.username > %s)`, expr, ka, expr, ka, ua))
	}
	switch q.Sort {
	case SortCredits:
		order = sqlPersonal + ` DESC, u.username`
		keyset(sqlPersonal, c.credits)
	case SortActivity:
		order = sqlActivity + ` DESC, u.username`
		keyset(sqlActivity, c.activity)
	default:
		if c != nil {
			where = append(where, `u.username > `+arg(c.username))
		}
	}
	sql := `SELECT ` + userColumns + userFrom
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, ` AND `)
	}
	sql += ` ORDER BY ` + order + ` LIMIT ` + arg(q.Limit+1)
	return sql, args
}

// keyFilterSQL is the key filters of q as conditions on the live key k
// (users without one match neither), the same decision as User.KeyStatus.
func keyFilterSQL(q *UserQuery, now time.Time, arg func(any) string) []string {
	var where []string
	switch q.KeyStatus {
	case KeyRevoked:
		where = append(where, `u.status = 'inactive' AND k.user_id IS NOT NULL`)
	case KeyExpired:
		where = append(where, `u.status = 'active' AND k.expires_at < `+arg(expiredBefore(now)))
	case KeyActive:
		where = append(where, `u.status = 'active' AND k.user_id IS NOT NULL AND (k.expires_at IS NULL OR k.expires_at >= `+
			arg(expiredBefore(now))+`)`)
	}
	if q.KeyOlderThan > 0 {
		where = append(where, `k.created_at < `+arg(now.Add(-q.KeyOlderThan)))
	}
	return where
}

// likeEscape quotes LIKE's wildcards (usernames may contain "_").
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func listUsersPage(ctx context.Context, q querier, uq *UserQuery, c *userCursor, now time.Time) ([]User, error) {
	sql, args := userListSQL(uq, c, now)
	users, err := queryUsers(ctx, q, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// credits and activity are the cursor's key as a query argument.
func (c *userCursor) credits() any { return c.key }

func (c *userCursor) activity() any {
	if c.key == negInf {
		return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	}
	return time.UnixMicro(c.key)
}
