package metering

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// unusualSQL computes the unusual-usage report in one statement over the
// rollup: the window's rows ($1..$2), then for the users with usage there
// the baseline's rows ($3..$1), both primary-key range scans, so the cost
// is users × days whatever the number of events.
//
// The median over n history days, days without usage counting 0: sorted
// ascending, the first n − m values are 0 and the rest are the m days with
// usage in order (rn 1..m). The median is the mean of the values at
// positions (n+1)/2 and n/2+1 (the same position when n is odd), i.e. of
// the days ranked (n+1)/2 − (n−m) and n/2+1 − (n−m), a rank below 1 being a
// zero day. median2 is their sum: twice the median, exact.
//
// History starts at the user's first day with usage: n is BaselineDays (28)
// when the rollup has a row of the user before the baseline (one probe of
// the username index), else the days from its first baseline row to the
// window. A day's credits are never counted below 0 (a cancellation on the
// day after its charge).
const unusualSQL = `WITH win AS (
	SELECT user_id, max(username) AS rollup_name, sum(requests)::bigint AS requests,
		greatest(sum(credits), 0)::bigint AS credits
	FROM usage_daily WHERE day >= $1::date AND day < $2::date
	GROUP BY user_id
), cand AS (
	SELECT w.user_id, w.rollup_name, w.requests, w.credits, u.username,
		u.status = 'active' AS active, coalesce(p.name, '') AS project
	FROM win w JOIN users u ON u.id = w.user_id LEFT JOIN projects p ON p.id = u.project_id
	WHERE w.credits > 0 AND w.credits >= $4 %s
), base AS (
	SELECT d.user_id, d.day, greatest(sum(d.credits), 0)::bigint AS c
	FROM usage_daily d JOIN cand USING (user_id)
	WHERE d.day >= $3::date AND d.day < $1::date
	GROUP BY d.user_id, d.day
), hist AS (
	SELECT c.user_id, CASE
		WHEN EXISTS (SELECT 1 FROM usage_daily o
			WHERE o.username = c.rollup_name AND o.day < $3::date AND o.user_id = c.user_id) THEN 28
		ELSE coalesce($1::date - (SELECT min(b.day) FROM base b WHERE b.user_id = c.user_id), 0)
	END AS n
	FROM cand c
), ranked AS (
	SELECT user_id, c, row_number() OVER (PARTITION BY user_id ORDER BY c) AS rn,
		count(*) OVER (PARTITION BY user_id) AS m
	FROM base WHERE c > 0
), med AS (
	SELECT h.user_id, h.n,
		coalesce(max(r.c) FILTER (WHERE r.rn = (h.n + 1) / 2 - (h.n - r.m)), 0)
		+ coalesce(max(r.c) FILTER (WHERE r.rn = h.n / 2 + 1 - (h.n - r.m)), 0) AS median2
	FROM hist h LEFT JOIN ranked r USING (user_id)
	GROUP BY h.user_id, h.n
), judged AS (
	SELECT c.username, c.project, c.active, c.credits, c.requests, m.n, m.median2
	FROM cand c JOIN med m USING (user_id)
	-- credits > k × median × days, with k in millionths and median2 = 2 × median.
	WHERE 2000000 * c.credits::numeric > $5::numeric * m.median2 * $6
)
SELECT username, project, active, credits, requests, n, median2::bigint FROM judged %s
ORDER BY credits DESC, username
LIMIT $7`

// unusualRows runs the report of q over rep's days and calls fn with each
// row, largest window credits first (then by username), from after c.
// limit < 0 means every row.
func unusualRows(ctx context.Context, db querier, rep *UnusualReport, q *UnusualQuery, c *unusualCursor,
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
		keyset = `WHERE credits < ` + cr + ` OR (credits = ` + cr + ` AND username > ` + un + `)`
	}
	rows, err := db.Query(ctx, fmt.Sprintf(unusualSQL, project, keyset), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
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
