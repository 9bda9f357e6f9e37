package metering

import (
	"context"
	"fmt"
	"time"
)

// userPeriods is where a user's project stands as of now: the start of
// its current allowance period (Unix seconds) and the month index, in the
// project's zone. The admin-side scripts (peek, adjust, refresh) take them
// rather than trusting a cache.
func userPeriods(u *User, now time.Time) (allowanceStart, month int64, err error) {
	loc, err := LoadLocation(u.projectTZ)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: %w", u.Username, err)
	}
	return PeriodStart(u.projectPeriod, loc, now), MonthIndex(loc, now), nil
}

// peekCall asks for balances as of now with lazy refills and grants applied
// in the answer only (peek.lua). Reading never writes, so listing users
// cannot race a charge, and refills still happen exactly once, at the next
// change.
func (e *Engine) peekCall(u *User, now time.Time) (*scriptCall, error) {
	start, month, err := userPeriods(u, now)
	if err != nil {
		return nil, err
	}
	c := getCall(peekScript)
	sh := e.keys.ShardOf(u.ProjectID, u.ID)
	args := peekArgs{UserKey: sh.User(u.ID), ProjectKey: sh.Project(u.ProjectID),
		AllowanceStart: start, Month: month}
	args.fill(c)
	return c, nil
}

// livePosition is a user's live balances and grant month (due grants
// applied), as a peek reports them.
type livePosition struct {
	Balances
	grantMonth int64
}

// liveBalances returns each user's live position as of now, loading cold
// ones from Postgres, with one pipelined round trip for the lot when Redis
// is warm.
func (e *Engine) liveBalances(ctx context.Context, users []User, now time.Time) ([]livePosition, error) {
	out := make([]livePosition, len(users))
	pending := make([]int, len(users))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		calls := make([]*scriptCall, len(pending))
		for j, i := range pending {
			c, err := e.peekCall(&users[i], now)
			if err != nil {
				return nil, err
			}
			calls[j] = c
		}
		if err := e.runner.RunAll(ctx, calls); err != nil {
			return nil, err
		}
		var again []int
		for j, i := range pending {
			c := calls[j]
			if c.Err != nil {
				putCall(c)
				return nil, c.Err
			}
			a, err := parsePeekAnswer(c.Res)
			putCall(c)
			if err != nil {
				return nil, err
			}
			switch a.Status {
			case scriptOK:
				out[i] = livePosition{Balances: a.Balances, grantMonth: a.GrantMonth}
			case scriptDeleted:
				// Deleted since the caller read it: nothing left.
			case scriptNoUser:
				if _, _, err := e.loadUser(ctx, users[i].ID); err != nil {
					return nil, err
				}
				again = append(again, i)
			case scriptNoProject:
				if err := e.loadProject(ctx, users[i].ProjectID); err != nil {
					return nil, err
				}
				again = append(again, i)
			}
		}
		pending = again
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("%w: user state did not load into Redis", ErrUnavailable)
	}
	return out, nil
}
