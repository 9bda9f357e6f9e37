package metering

import (
	"context"
	"fmt"
	"time"
)

// refreshCall starts a charge.lua call for an admin-side mode ("peek" or
// "adjust") with the first seven arguments: the mode, no key or versions
// to check, and the clock and period starts for the user's project.
func (e *Engine) refreshCall(u *User, mode string, now time.Time) (*scriptCall, error) {
	loc, err := LoadLocation(u.projectTZ)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", u.Username, err)
	}
	c := getCall(chargeScript)
	c.Keys = append(c.Keys, e.keys.User(u.ID), e.keys.Project(u.ProjectID), e.keys.Events())
	c.Args = append(c.Args, mode, "", "", "", now.UnixMilli(),
		PeriodStart(u.projectPeriod, loc, now), MonthIndex(loc, now))
	return c, nil
}

// peekCall asks for balances as of now with lazy refills and grants applied
// in the answer only. Reading never writes, so listing users cannot race a
// charge, and refills still happen exactly once, at the next change.
func (e *Engine) peekCall(u *User, now time.Time) (*scriptCall, error) {
	c, err := e.refreshCall(u, "peek", now)
	if err != nil {
		return nil, err
	}
	c.Args = append(c.Args, 0, "", "", u.ID)
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
			switch {
			case c.Err != nil:
				putCall(c)
				return nil, c.Err
			case c.Res[0] == scriptOK && len(c.Res) >= 9:
				r := c.Res
				out[i] = livePosition{Balances: Balances{Effective: Credits(r[1]), Allowance: Credits(r[2]),
					PoolAvailable: Credits(r[3]), Awarded: Credits(r[4]), Purchased: Credits(r[5])}, grantMonth: r[8]}
			case c.Res[0] == scriptDeleted:
				// Deleted since the caller read it: nothing left.
			case c.Res[0] == scriptNoUser:
				if _, err := e.loadUser(ctx, users[i].ID); err != nil {
					putCall(c)
					return nil, err
				}
				again = append(again, i)
			case c.Res[0] == scriptNoProject:
				if err := e.loadProject(ctx, users[i].ProjectID); err != nil {
					putCall(c)
					return nil, err
				}
				again = append(again, i)
			default:
				putCall(c)
				return nil, fmt.Errorf("peek answered %v", c.Res)
			}
			putCall(c)
		}
		pending = again
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("%w: user state did not load into Redis", ErrUnavailable)
	}
	return out, nil
}
