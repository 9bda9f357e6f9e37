package metering

import (
	"context"
	"strconv"
	"time"
)

// usageReport sums the rollup rows of q. The WHERE clause holds only the
// filters given, so each query shape gets a plan that uses its index.
func usageReport(ctx context.Context, db querier, q UsageQuery) ([]UsageRow, error) {
	key := map[UsageGroup]string{GroupDay: "day", GroupUser: "username", GroupProject: "project_name", GroupModel: "model"}[q.GroupBy]
	// Days go as text: a timestamptz cast to date would use the session's time zone.
	args := []any{q.From.Format(time.DateOnly), q.To.Format(time.DateOnly)}
	where := ` WHERE day >= $1::date AND day < $2::date`
	if q.User != "" {
		args = append(args, q.User)
		where += ` AND username = $` + strconv.Itoa(len(args))
	}
	if q.Project != "" {
		args = append(args, q.Project)
		where += ` AND project_name = $` + strconv.Itoa(len(args))
	}
	if q.Model != "" {
		args = append(args, q.Model)
		where += ` AND model = $` + strconv.Itoa(len(args))
	}
	sel, tail := `NULL::text`, ``
	if key != "" {
		sel, tail = key, ` GROUP BY `+key+` ORDER BY `+key
		if key == "day" {
			sel = `to_char(day, 'YYYY-MM-DD')` // independent of DateStyle
		}
	}
	rows, err := db.Query(ctx, `SELECT `+sel+`, coalesce(sum(requests), 0)::bigint,
		coalesce(sum(credits), 0)::bigint, coalesce(sum(allowance), 0)::bigint,
		coalesce(sum(pool), 0)::bigint, coalesce(sum(awarded), 0)::bigint,
		coalesce(sum(purchased), 0)::bigint
		FROM usage_daily`+where+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		var r UsageRow
		var k *string
		if err := rows.Scan(&k, &r.Requests, &r.Credits, &r.Allowance, &r.Pool, &r.Awarded, &r.Purchased); err != nil {
			return nil, err
		}
		if k != nil {
			switch q.GroupBy {
			case GroupDay:
				d, err := time.Parse(time.DateOnly, *k)
				if err != nil {
					return nil, err
				}
				r.Day = d
			case GroupUser:
				r.User = *k
			case GroupProject:
				r.Project = *k
			case GroupModel:
				r.Model = *k
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
