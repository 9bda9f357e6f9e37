package metering

import (
	"context"
	"fmt"
	"time"
)

// UsageGroup is how a usage report groups its rows.
type UsageGroup string

const (
	GroupNone    UsageGroup = "none"
	GroupDay     UsageGroup = "day"
	GroupUser    UsageGroup = "user"
	GroupProject UsageGroup = "project"
	GroupModel   UsageGroup = "model"
)

// UsageQuery selects a usage report. The rollup is kept per UTC day, so the
// range is in whole UTC days: From is the first day included, To the first
// day excluded (a half-open range, so "this month" is [1st, next 1st)).
type UsageQuery struct {
	User    string // username; "" for all
	Project string // project name; "" for all
	Model   string // priced model; "" for all (fixed-cost usage has no model)
	From    time.Time
	To      time.Time
	GroupBy UsageGroup // "" means none
}

// UsageRow is one line of a usage report. Day, User and Project are set
// according to the grouping; Project is "" for usage outside any project,
// Model "" for fixed-cost usage.
// Charged amounts are positive.
type UsageRow struct {
	Day       time.Time // UTC midnight (GroupDay)
	User      string    // GroupUser
	Project   string    // GroupProject
	Model     string    // GroupModel
	Requests  int64
	Credits   Credits
	Allowance Credits
	Pool      Credits
	Awarded   Credits
	Purchased Credits
}

// UTCDay truncates t to the start of its UTC day.
func UTCDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (q *UsageQuery) validate() error {
	switch q.GroupBy {
	case "":
		q.GroupBy = GroupNone
	case GroupNone, GroupDay, GroupUser, GroupProject, GroupModel:
	default:
		return invalid("group_by", "must be day, user, project, model or none")
	}
	if q.Model != "" && !ValidModel(q.Model) {
		return invalid("model", "must be a model name")
	}
	if q.User != "" && !ValidName(q.User) {
		return invalid("user", "must be a username")
	}
	if q.Project != "" && !ValidName(q.Project) {
		return invalid("project", "must be a project name")
	}
	if !q.From.Equal(UTCDay(q.From)) {
		return invalid("from", "must be a UTC day")
	}
	if !q.To.Equal(UTCDay(q.To)) {
		return invalid("to", "must be a UTC day")
	}
	if !q.To.After(q.From) {
		return invalid("to", fmt.Sprintf("must be after from (%s); to is exclusive", q.From.Format(time.DateOnly)))
	}
	return nil
}

// Usage reports charged usage from the daily rollup, never the ledger, so
// its cost depends on days × users in range, not on the number of events.
// Events still in the Redis stream are not counted yet.
func (e *Engine) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	rows, err := usageReport(ctx, e.db, q)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return rows, nil
}

// Now is the engine's clock (tests move it), for defaults such as "this month".
func (e *Engine) Now() time.Time { return e.cfg.Now() }
