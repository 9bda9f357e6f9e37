package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// refreshChunk bounds how many script calls one pipeline carries.
const refreshChunk = 500

// RefreshProject brings every member's allowance up to the current period
// now, rather than at each one's next request: refresh.lua writes the refills and monthly grants that are due, with their events, and
// charges nothing. The events are in Postgres before it returns, so the
// ledger shows the current period for every member. The admin API calls it
// "settle" (POST /projects/{name}/settle, audit action project.settle); in
// the engine, Settle is the end of a reservation, so this one is named for
// the script it runs.
func (e *Engine) RefreshProject(ctx context.Context, actor, name string) (Project, error) {
	p, err := getProjectByName(ctx, e.db, name)
	if err != nil {
		return Project{}, err
	}
	members, err := listProjectMembers(ctx, e.db, p.ID)
	if err != nil {
		return Project{}, fmt.Errorf("settle %q: %w", name, err)
	}
	now := e.cfg.Now()
	var events []Event
	for start := 0; start < len(members); start += refreshChunk {
		evs, err := e.refreshUsers(ctx, members[start:min(start+refreshChunk, len(members))], now)
		if err != nil {
			return Project{}, err
		}
		events = append(events, evs...)
	}
	refills := 0
	for _, ev := range events {
		if ev.Kind == KindRefill {
			refills++
		}
	}
	audit := AuditEntry{Actor: actor, Action: "project.settle", Target: p.Name,
		Details: map[string]any{"members": len(members), "refills": refills, "grants": len(events) - refills}}
	err = e.applyWithRetry(ctx, func(tx pgx.Tx) error {
		if _, err := e.applyEvents(ctx, tx, events); err != nil {
			return err
		}
		return insertAudit(ctx, tx, audit)
	})
	if err != nil {
		return Project{}, fmt.Errorf("%w: settle of %q applied in Redis but not yet recorded in Postgres (the reconciler will record it): %v",
			ErrUnavailable, name, err)
	}
	return e.GetProject(ctx, name)
}

// refreshUsers runs refresh.lua for users in one pipeline (again for those
// Redis had not loaded) and returns the events the script appended,
// rebuilt from its answers.
func (e *Engine) refreshUsers(ctx context.Context, users []User, now time.Time) ([]Event, error) {
	var events []Event
	pending := users
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		calls := make([]*scriptCall, len(pending))
		ids := make([]string, len(pending))
		for i := range pending {
			u := &pending[i]
			start, month, err := userPeriods(u, now)
			if err != nil {
				return nil, err
			}
			ids[i] = e.ids.Next()
			c := getCall(refreshScript)
			sh := e.keys.ShardOf(u.ProjectID, u.ID)
			args := refreshArgs{UserKey: sh.User(u.ID), ProjectKey: sh.Project(u.ProjectID),
				EventsKey: sh.Events(), NowMs: now.UnixMilli(), AllowanceStart: start, Month: month,
				EventID: ids[i], UserID: u.ID}
			args.fill(c)
			calls[i] = c
		}
		err := e.runner.RunAll(ctx, calls)
		var again []User
		for i, c := range calls {
			u := &pending[i]
			var a refreshAnswer
			switch {
			case err != nil:
			case c.Err != nil:
				err = c.Err
			default:
				a, err = parseRefreshAnswer(c.Res)
			}
			putCall(c)
			if err != nil {
				continue
			}
			switch a.Status {
			case scriptOK:
				events = append(events, refreshEvents(u, ids[i], now, a)...)
			case scriptDeleted:
				// Deleted since the member list was read: nothing to refresh.
			case scriptNoUser:
				if _, _, err = e.loadUser(ctx, u.ID); err == nil {
					again = append(again, *u)
				}
			case scriptNoProject:
				if err = e.loadProject(ctx, u.ProjectID); err == nil {
					again = append(again, *u)
				}
			}
		}
		if err != nil {
			// Events already appended stay in the stream for the reconciler.
			return nil, err
		}
		pending = again
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("%w: user state did not load into Redis", ErrUnavailable)
	}
	return events, nil
}

// refreshEvents rebuilds the refill and grant events refresh.lua appended,
// with the same ids, so whichever copy reaches Postgres first is the one
// counted.
func refreshEvents(u *User, id string, now time.Time, a refreshAnswer) []Event {
	at := time.UnixMilli(now.UnixMilli()).UTC()
	base := Event{Kind: KindRefill, At: at, UserID: u.ID, Username: u.Username, ProjectID: u.ProjectID, ProjectName: u.ProjectName}
	var out []Event
	if a.Refilled {
		ev := base
		ev.ID, ev.Allowance, ev.PoolUsed = id+":r", a.Allowance, a.PoolUsed
		ev.AllowancePeriod, ev.HasPeriod = a.Period, true
		out = append(out, ev)
	}
	if a.Grant > 0 {
		ev := base
		ev.ID, ev.Kind, ev.Purchased = id+":g", KindGrant, a.Grant
		ev.GrantMonth, ev.HasGrant = a.Month, true
		out = append(out, ev)
	}
	return out
}
