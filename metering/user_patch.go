package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

var patchUserScript = mustScript("patch_user.lua")

// KindConfig is an event that moves balance fields because of a
// configuration change: a project reassignment (the allowance and pool draw
// of the new project: resumed or fresh, see parked.go) or a monthly grant
// schedule change (the grant month).
const KindConfig = "config"

// UserPatch is a partial update of a user; nil or unset fields stay.
type UserPatch struct {
	Username *string // rename, only while the user has no usage history
	// SetProject moves the user to Project ("" unassigns).
	SetProject   bool
	Project      string
	MonthlyGrant *Credits
	Partner      *bool
	// SetKeyExpiry changes the live key's expiry to KeyExpiresAt (nil: never).
	SetKeyExpiry bool
	KeyExpiresAt *time.Time
}

func (p *UserPatch) validate(now time.Time) error {
	if p.Username != nil && !ValidName(*p.Username) {
		return invalidName("username", "username", *p.Username, NameProblem(*p.Username))
	}
	if p.SetProject && p.Project != "" && !ValidName(p.Project) {
		return invalid("project", "must be a project name or null")
	}
	if g := p.MonthlyGrant; g != nil && (*g < 0 || *g > MaxCredits) {
		return invalid("monthly_grant", "must be between 0 and 9007199254.740991")
	}
	if p.SetKeyExpiry && p.KeyExpiresAt != nil && !p.KeyExpiresAt.After(now) {
		return invalid("key_expires_at", "must be in the future (deactivate the user to stop a key now)")
	}
	return nil
}

// PatchUser changes a user's name, project, monthly grant, partner flag or
// key expiry. Every change bumps the user's version so gateways refresh
// their cached entry on the next request. A new project takes effect from
// the next request: the allowance and pool draw the user left there in the
// same period, or else its full allowance and a fresh pool draw (see
// patch_user.lua); the balance fields that moves change in patch_user.lua
// with their events, like every balance change, and the events are
// recorded in Postgres before this returns.
func (e *Engine) PatchUser(ctx context.Context, actor, username string, p UserPatch) (UserView, error) {
	now := e.cfg.Now()
	if err := p.validate(now); err != nil {
		return UserView{}, err
	}
	if p.SetProject && len(e.keys.Shards()) > 1 {
		// A move to a project in another shard waits for none of the
		// user's credit leases (move_out.lua): they end first.
		if u, err := getUserByName(ctx, e.db, username); err == nil {
			if err := e.recall(ctx, 0, u.ID); err != nil {
				return UserView{}, err
			}
		}
	}
	var events []Event
	newName := username
	var changed int64     // the user's id, when something changed
	var move *pendingMove // a move between shards, finished after the commit
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		u, err := lockUserByName(ctx, tx, username)
		if err != nil {
			return err
		}
		next, changes, err := e.applyPatch(ctx, tx, u, p)
		if err != nil {
			return err
		}
		newName = next.Username
		if len(changes) == 0 {
			return nil // nothing to change: no version bump, no audit
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.update", Target: u.Username, Details: changes}); err != nil {
			return err
		}
		events, move, err = e.patchRedis(ctx, actor, u, next, now, changes)
		changed = u.ID
		return err
	})
	if err == nil && move != nil {
		err = e.moveDone(ctx, *move)
	}
	if err == nil {
		// Leases taken under the old settings end before this returns.
		err = e.recall(ctx, 0, changed)
	}
	if err != nil {
		return UserView{}, err
	}
	if len(events) > 0 {
		err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
			_, err := e.applyEvents(ctx, tx, events)
			return err
		})
		if err != nil {
			return UserView{}, fmt.Errorf("%w: user %q changed, but its balance event is not yet recorded in Postgres (the reconciler will record it; do not retry): %v",
				ErrUnavailable, newName, err)
		}
	}
	return e.GetUser(ctx, newName)
}

// applyPatch writes the patch to Postgres in tx and returns the user as it
// now is, with the changed fields (from → to) for the audit entry.
func (e *Engine) applyPatch(ctx context.Context, tx pgx.Tx, u User, p UserPatch) (User, map[string]any, error) {
	changes := map[string]any{}
	next := u
	if p.Username != nil && *p.Username != u.Username {
		if u.LastActivityAt != nil {
			return u, nil, refuse(ErrConflict, "User %q has usage history, which keeps its name; it cannot be renamed.", u.Username)
		}
		changes["username"] = map[string]any{"from": u.Username, "to": *p.Username}
		next.Username = *p.Username
	}
	if p.SetProject && p.Project != u.ProjectName {
		next.ProjectID, next.ProjectName = 0, ""
		if p.Project != "" {
			proj, err := getProjectByName(ctx, tx, p.Project)
			if errors.Is(err, ErrNotFound) {
				return u, nil, invalid("project", fmt.Sprintf("There is no project named %q", p.Project))
			}
			if err != nil {
				return u, nil, err
			}
			next.ProjectID, next.ProjectName = proj.ID, proj.Name
		}
		changes["project"] = map[string]any{"from": nullable(u.ProjectName), "to": nullable(next.ProjectName)}
	}
	if p.MonthlyGrant != nil && *p.MonthlyGrant != u.MonthlyGrant {
		changes["monthly_grant"] = map[string]any{"from": u.MonthlyGrant, "to": *p.MonthlyGrant}
		next.MonthlyGrant = *p.MonthlyGrant
	}
	if p.Partner != nil && *p.Partner != u.Partner {
		changes["partner"] = map[string]any{"from": u.Partner, "to": *p.Partner}
		next.Partner = *p.Partner
	}
	if p.SetKeyExpiry && u.Key != nil && !sameTime(u.Key.ExpiresAt, p.KeyExpiresAt) {
		changes["key_expires_at"] = map[string]any{"from": u.Key.ExpiresAt, "to": p.KeyExpiresAt}
		if err := setLiveKeyExpiry(ctx, tx, u.ID, p.KeyExpiresAt); err != nil {
			return u, nil, err
		}
	}
	if len(changes) == 0 {
		return u, changes, nil
	}
	if err := updateUserRow(ctx, tx, next); err != nil {
		return u, nil, err
	}
	updated, err := getUserByID(ctx, tx, u.ID)
	return updated, changes, err
}

// patchRedis mirrors the patched user into Redis with patch_user.lua and
// returns the events it appended, for recording in Postgres. A move to a
// project in another shard first moves the user's hash there
// (move_shards.go) and returns the move, which the caller finishes once
// Postgres has committed (moveDone).
func (e *Engine) patchRedis(ctx context.Context, actor string, old, u User, now time.Time, changes map[string]any) ([]Event, *pendingMove, error) {
	_, rename := changes["username"]
	_, reassign := changes["project"]
	_, grantChange := changes["monthly_grant"]
	if _, partner := changes["partner"]; partner {
		grantChange = true // grants run only while the user is a partner
	}
	var move *pendingMove
	if e.keys.ShardOf(u.ProjectID, u.ID) != e.keys.ShardOf(old.ProjectID, old.ID) {
		if len(changes) > 1 {
			return nil, nil, invalid("project", "moves the user to a project in another Redis shard: change the project alone, then the rest")
		}
		m, err := e.moveOut(ctx, actor, old, u)
		if err != nil {
			return nil, nil, err
		}
		move = &m
		// Copied to the new shard, not yet applied or committed: where a
		// crash test kills the gateway.
		failpoint(failpointMoveAfterCopy)
	}
	events, err := e.patchInShard(ctx, actor, old, u, now, rename, reassign, grantChange)
	if err != nil && move != nil && !errors.Is(err, ErrOutcomeUnknown) {
		// The patch did not run: the move is undone. (Had its answer been
		// lost, it may have run: the sweeper finds out.)
		err = errors.Join(err, e.undoMove(ctx, *move))
		move = nil
	}
	return events, move, err
}

// patchInShard runs patch_user.lua in the shard of u, loading the user or
// its project when Redis lacks them, and returns the events it appended.
func (e *Engine) patchInShard(ctx context.Context, actor string, old, u User, now time.Time, rename, reassign, grantChange bool) ([]Event, error) {
	if u.ProjectID != 0 {
		// Redis may never have seen the new project.
		if err := e.loadProject(ctx, u.ProjectID); err != nil {
			return nil, err
		}
	}
	loc, err := LoadLocation(u.projectTZ)
	if err != nil {
		return nil, err
	}
	oldLoc, err := LoadLocation(old.projectTZ)
	if err != nil {
		return nil, err
	}
	sh := e.keys.ShardOf(u.ProjectID, u.ID)
	id := e.ids.Next()
	config := userConfigArgs(u)
	var res []int64
	for attempt := 0; attempt < 3; attempt++ {
		c := getCall(patchUserScript)
		c.Keys = append(c.Keys, sh.User(u.ID), sh.Project(u.ProjectID), sh.Events())
		c.Args = append(c.Args, u.Version, now.UnixMilli(), id, actor, flag(rename), flag(reassign),
			PeriodStart(u.projectPeriod, loc, now), MonthIndex(loc, now), flag(grantChange), u.ID,
			MonthIndex(oldLoc, now), old.ProjectID, old.ProjectName, len(config)/2)
		c.Args = append(c.Args, config...)
		err := e.runner.Run(ctx, c)
		res = append(res[:0], c.Res...)
		putCall(c)
		if err != nil {
			return nil, err
		}
		switch res[0] {
		case scriptNoUser:
			// Loaded from outside this transaction: the old config, at
			// an older version, which this script then overwrites.
			_, _, err = e.loadUser(ctx, u.ID)
		case scriptNoProject:
			err = e.loadProject(ctx, u.ProjectID)
		default:
			attempt = 3
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case res[0] == 3:
		return nil, refuse(ErrConflict, "User %q has usage not yet recorded in the ledger, which keeps its name; it cannot be renamed.", old.Username)
	case res[0] == 4:
		return nil, refuse(ErrConflict, "The ledger is catching up on a long backlog; renaming %q must wait until it has (try again shortly).", old.Username)
	case res[0] == scriptStale:
		return nil, refuse(ErrConflict, "User %q changed concurrently; try again.", old.Username)
	case res[0] != scriptOK || len(res) < 16:
		return nil, fmt.Errorf("%w: patch script answered %v", ErrUnavailable, res)
	}
	if reassign {
		// The key index names the user's project (indexValue).
		if err := indexUsers(ctx, e.rdb, e.keys, []User{u}, nil); err != nil {
			return nil, unavailable(err)
		}
	}
	return patchEvents(id, actor, &old, &u, now, res), nil
}

// patchEvents rebuilds the events patch_user.lua appended from its answer,
// with the same ids, so whichever copy reaches Postgres first is counted.
func patchEvents(id, actor string, old, u *User, now time.Time, res []int64) []Event {
	at := time.UnixMilli(now.UnixMilli()).UTC()
	base := Event{At: at, UserID: u.ID, Username: u.Username, ProjectID: u.ProjectID, ProjectName: u.ProjectName}
	var events []Event
	if grant := Credits(res[5]); grant > 0 {
		ev := base
		ev.ID, ev.Kind, ev.Purchased, ev.GrantMonth, ev.HasGrant = id+":g", KindGrant, grant, res[4], true
		events = append(events, ev)
	}
	events = append(events, moveEvents(id, base, old, res[8:15])...)
	if res[6] == 1 {
		ev := base
		ev.ID, ev.Kind, ev.Actor = id, KindConfig, actor
		ev.Allowance, ev.PoolUsed = Credits(res[1]), Credits(res[2])
		ev.AllowancePeriod, ev.HasPeriod = res[3], res[15] == 1
		if res[7] == 1 {
			ev.GrantMonth, ev.HasGrant = res[4], true
		}
		events = append(events, ev)
	}
	return events
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
