package metering

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// unusualSQL computes the unusual-usage report in one statement over the
// rollup: the window's rows ($1..$2), then for the users with usage there
// the baseline's rows ($3..$1), both primary-key range scans, so the cost
// is users × days whatever the number of events.
//
// The median over n history days, days without usage counting 0: sorted
// ascending, the first z = n − m values are 0 and the rest are the m days
// with usage, in order (vals[1..m]). The median is the mean of the values
// at positions (n+1)/2 and n/2+1 (the same position when n is odd), that
// is vals[(n+1)/2 − z] and vals[n/2+1 − z], an index below 1 being a zero
// day (NULL). median2 is their sum: twice the median, exact.
//
// History starts at the user's first day with usage: n is 28
// (BaselineDays) when the user has usage on the baseline's first day or
// any row before it (one probe of the username index, which a scalar
// subquery with LIMIT keeps a probe), else the days from its first
// baseline row to the window. A day's credits never count below 0 (a
// cancellation recorded on the day after its charge).
const unusualSQL = `WITH win AS (
	SELECT user_id, max(username) AS rollup_name, sum(requests)::bigint AS requests,
		greatest(sum(credits), 0)::bigint AS credits
	FROM usage_daily WHERE day >= $1::date AND day < $2::date
	GROUP BY user_id
), cand AS MATERIALIZED (
	SELECT w.user_id, w.rollup_name, w.requests, w.credits, u.username,
		u.status = 'active' AS active, coalesce(p.name, '') AS project
	FROM win w JOIN users u ON u.id = w.user_id LEFT JOIN projects p ON p.id = u.project_id
	WHERE w.credits > 0 AND w.credits >= $4 %s
), days AS (
	SELECT d.user_id, d.day, greatest(sum(d.credits), 0)::bigint AS used
	FROM usage_daily d
	WHERE d.day >= $3::date AND d.day < $1::date AND d.user_id IN (SELECT user_id FROM cand)
	GROUP BY d.user_id, d.day
), hist AS MATERIALIZED (
	SELECT c.*, h.vals, CASE
		WHEN h.first_day = $3::date THEN 28
		WHEN (SELECT true FROM usage_daily o
			WHERE o.username = c.rollup_name AND o.day < $3::date AND o.user_id = c.user_id LIMIT 1) THEN 28
		ELSE coalesce($1::date - h.first_day, 0)
	END AS n
	FROM cand c LEFT JOIN (
		SELECT user_id, min(day) AS first_day, array_agg(used ORDER BY used) FILTER (WHERE used > 0) AS vals
		FROM days GROUP BY user_id
	) h USING (user_id)
), med AS (
	SELECT username, project, active, credits, requests, n,
		coalesce(vals[(n + 1) / 2 - z], 0) + coalesce(vals[n / 2 + 1 - z], 0) AS median2
	FROM hist, LATERAL (SELECT n - coalesce(cardinality(vals), 0) AS z) zeros
)
SELECT username, project, active, credits, requests, n, median2 FROM med
-- credits > k × median × days, with k in millionths and median2 = 2 × median.
WHERE 2000000 * credits::numeric > $5::numeric * median2 * $6 %s
ORDER BY credits DESC, username
LIMIT $7`

// unusualRows runs the report of q over rep's days and calls fn with each
// row, largest window credits first (then by username), from after c.
// limit < 0 means every row.
func unusualRows(ctx context.Context, db *pgxpool.Pool, rep *UnusualReport, q *UnusualQuery, c *unusualCursor,
	limit int, fn func(UnusualRow) error) error {
	var lim *int
	if limit >= 0 {
		lim = &limit
	}
	// Days go as text: a timestamptz cast to date would use the session's time zone.
	args := []any{rep.From.Format(time.DateOnly), rep.To.Format(time.DateOnly),
		rep.BaselineFrom.Format(time.DateOnly), int64(q.MinCredits), int64(q.Factor), q.Window.Days(), lim}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	project := ""
	switch {
	case q.Project == ProjectNone:
		project = `AND u.project_id IS NULL`
	case q.Project != "":
		project = `AND p.name = ` + arg(q.Project)
	}
	keyset := ""
	if c != nil {
		cr, un := arg(int64(c.credits)), arg(c.username)
		keyset = `AND (credits < ` + cr + ` OR (credits = ` + cr + ` AND username > ` + un + `))`
	}
	sql := fmt.Sprintf(unusualSQL, project, keyset)
	return pgx.BeginTxFunc(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The planner prices each history probe far above what it takes,
		// and JIT compiling for that estimate was a third of the report's time.
		if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return scanUnusual(rows, fn)
	})
}

// scanUnusual reads the rows of unusualSQL and says why each is there.
func scanUnusual(rows pgx.Rows, fn func(UnusualRow) error) error {
	for rows.Next() {
		var r UnusualRow
		if err := rows.Scan(&r.User, &r.Project, &r.Active, &r.Credits, &r.Requests, &r.HistoryDays, &r.Median2); err != nil {
			return err
		}
		switch {
		case r.HistoryDays == 0:
			r.Reason = ReasonNoHistory
		case r.Median2 == 0:
			r.Reason = ReasonZeroMedian
		case r.HistoryDays < BaselineDays:
			r.Reason = ReasonShortHistory
		default:
			r.Reason = ReasonSpike
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}
