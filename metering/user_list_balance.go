package metering

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// BalanceZero as UserQuery.Balance lists only users whose live effective
// credits (allowance + pool available + awarded + purchased, as the next
// request would see them) are 0.
//
// Effective credits live in Redis and change with every request, refill
// and pool draw, so no index holds them, and reading them for every user
// would cost one Redis script per user of the instance. Instead the
// ledger proposes candidates and Redis confirms them:
//
//  1. Postgres selects the users whose ledger balances would be 0 now:
//     personal credits 0 and no monthly grant due (only partners are
//     paid); an allowance of 0 (the
//     project's amount when a refill is due, else what is left); no pool
//     credit within reach (pool off or empty, or the user's pool limit
//     reached this period). Refills and grants are judged with each
//     project's current period start and month, computed here once per
//     distinct rule (period, time zone) exactly as the gateway computes
//     them, so with the ledger caught up the candidates are exactly the
//     users at 0 and Redis is asked about no one else.
//  2. The candidates' live balances are read in one pipeline, and only
//     those at 0 are kept. Candidates are read page by page in the
//     listing's order until the page is full or none are left, so pages
//     are full except the last and the cursor is the last user shown.
//
// The approximation: the ledger lags Redis by the events not yet
// reconciled (normally under a second). A user who spent the last credit
// in that moment, or whose pool another member just emptied, is listed
// once the ledger has those events. A user listed is always at 0 live.
const BalanceZero = "zero"

// zeroBalanceFilter is step 1 of BalanceZero: the clocks of every
// allowance rule projects use, for the SQL condition.
type zeroBalanceFilter struct {
	starts map[string]int64 // "<period> <time zone>" → the current period's start, Unix seconds
	months map[string]int64 // time zone → the current month index
}

// zeroBalanceFilter computes the clocks of every allowance rule in use.
// A project whose rule changes meanwhile matches no clock; the SQL then
// keeps its users as candidates both ways, so none is missed.
func (e *Engine) zeroBalanceFilter(ctx context.Context, now time.Time) (*zeroBalanceFilter, error) {
	f := &zeroBalanceFilter{starts: map[string]int64{}, months: map[string]int64{}}
	rules, err := allowanceRules(ctx, e.db)
	if err != nil {
		return nil, fmt.Errorf("allowance rules: %w", err)
	}
	zones := map[string]bool{"UTC": true} // unassigned users' grants run on UTC months
	for _, r := range rules {
		period, tz := r.period, r.timezone
		loc, err := LoadLocation(tz)
		if err != nil {
			continue // the gateway cannot refill it either; Redis decides
		}
		if period != string(PeriodNone) {
			f.starts[period+" "+tz] = PeriodStart(Period(period), loc, now)
		}
		zones[tz] = true
	}
	for tz := range zones {
		loc, err := LoadLocation(tz)
		if err == nil {
			f.months[tz] = MonthIndex(loc, now)
		}
	}
	return f, nil
}

// sql is the WHERE condition of step 1 over users u and their project p.
// An unknown clock makes a CASE NULL, and each test is written so that
// NULL keeps the user a candidate: a refill that may be due is tried both
// ways.
func (f *zeroBalanceFilter) sql(arg func(any) string) string {
	start := clockCase(`p.allowance_period || ' ' || p.timezone`, f.starts, arg)
	month := clockCase(`coalesce(p.timezone, 'UTC')`, f.months, arg)
	// A refill is due: the project has a period and the user's allowance
	// belongs to an earlier one (prelude.lua's due_refill).
	due := `(p.id IS NOT NULL AND p.allowance_period <> 'none' AND u.allowance_period < (` + start + `))`
	return `u.awarded + u.purchased <= 0
		AND (NOT u.partner OR u.monthly_grant <= 0 OR u.grant_month >= (` + month + `)) IS NOT FALSE
		AND (` + due + ` IS NOT FALSE AND p.allowance_amount <= 0 OR ` + due + ` IS NOT TRUE AND u.allowance_remaining <= 0)
		AND (p.pool_enabled IS NOT TRUE OR p.pool_balance <= 0
			OR ` + due + ` IS NOT FALSE AND p.pool_per_user_limit <= 0
			OR ` + due + ` IS NOT TRUE AND p.pool_per_user_limit <= u.pool_used)`
}

// clockCase is a CASE over key giving each clock's value, NULL for a key
// it lacks. With no clocks at all (every project without periods, or no
// project) it is a plain NULL: a CASE needs at least one WHEN.
func clockCase(key string, clocks map[string]int64, arg func(any) string) string {
	if len(clocks) == 0 {
		return `NULL::bigint`
	}
	c := `CASE ` + key
	for _, k := range sortedClockKeys(clocks) {
		c += ` WHEN ` + arg(k) + `::text THEN ` + arg(clocks[k]) + `::bigint`
	}
	return c + ` END`
}

func sortedClockKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same text for the same rules: one prepared statement
	return keys
}

// findZeroBalance is FindUsers for Balance = BalanceZero (see there).
func (e *Engine) findZeroBalance(ctx context.Context, q UserQuery, c *userCursor) ([]UserView, string, error) {
	// One instant for the page: the clocks the ledger is judged by, the
	// live balances and what the views say they are as of.
	now := e.cfg.Now()
	f, err := e.zeroBalanceFilter(ctx, now)
	if err != nil {
		return nil, "", err
	}
	q.zero = f
	var found []User
	var live []livePosition
	for {
		cands, err := listUsersPage(ctx, e.db, &q, c, now) // up to Limit+1
		if err != nil {
			return nil, "", err
		}
		bal, err := e.liveBalances(ctx, cands, now)
		if err != nil {
			return nil, "", err
		}
		for i := range cands {
			if bal[i].Effective == 0 {
				found, live = append(found, cands[i]), append(live, bal[i])
			}
		}
		if len(found) > q.Limit || len(cands) <= q.Limit {
			break
		}
		c = cursorOf(&cands[len(cands)-1], q.Sort)
	}
	next := ""
	if len(found) > q.Limit {
		found, live = found[:q.Limit], live[:q.Limit]
		next = cursorOf(&found[q.Limit-1], q.Sort).encode(q.Sort)
	}
	views, err := e.viewsWith(ctx, found, live, now)
	return views, next, err
}
