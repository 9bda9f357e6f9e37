package metering

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ProjectPatch is a change of a project's settings; nil fields stay as they are.
type ProjectPatch struct {
	AllowanceAmount *Credits
	Period          *Period
	TimeZone        *string
	PoolEnabled     *bool
	// SetPerUserLimit says PoolPerUserLimit is given: a limit, or nil for none.
	SetPerUserLimit  bool
	PoolPerUserLimit *Credits
}

func (c *ProjectPatch) validate() error {
	if a := c.AllowanceAmount; a != nil && (*a < 0 || *a > MaxCredits) {
		return invalid("allowance.amount", "must be between 0 and 9007199254.740991")
	}
	if c.Period != nil {
		p, err := ParsePeriod(string(*c.Period))
		if err != nil {
			return invalid("allowance.period", err.Error())
		}
		c.Period = &p
	}
	if c.TimeZone != nil {
		if *c.TimeZone == "" {
			utc := "UTC"
			c.TimeZone = &utc
		}
		if _, err := LoadLocation(*c.TimeZone); err != nil {
			return invalid("allowance.timezone", err.Error())
		}
	}
	if l := c.PoolPerUserLimit; c.SetPerUserLimit && l != nil && (*l < 0 || *l > MaxCredits) {
		return invalid("pool.per_user_limit", "must be between 0 and 9007199254.740991, or null")
	}
	return nil
}

// details lists the changed fields for the audit entry.
func (c ProjectPatch) details() map[string]any {
	d := map[string]any{}
	if c.AllowanceAmount != nil {
		d["allowance.amount"] = *c.AllowanceAmount
	}
	if c.Period != nil {
		d["allowance.period"] = *c.Period
	}
	if c.TimeZone != nil {
		d["allowance.timezone"] = *c.TimeZone
	}
	if c.PoolEnabled != nil {
		d["pool.enabled"] = *c.PoolEnabled
	}
	if c.SetPerUserLimit {
		d["pool.per_user_limit"] = c.PoolPerUserLimit
	}
	return d
}

// UpdateProject changes a project's settings and bumps its version, so every
// gateway's cached copy turns stale: the next charge's script answers
// "stale", the gateway re-reads the project and the charge uses the new
// settings. Balances are untouched: a new allowance amount or period applies
// from the next refill (the next period boundary), pool settings at once.
func (e *Engine) UpdateProject(ctx context.Context, actor, name string, patch ProjectPatch) (Project, error) {
	if err := patch.validate(); err != nil {
		return Project{}, err
	}
	details := patch.details()
	if len(details) == 0 {
		return e.GetProject(ctx, name)
	}
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		p, err := lockProject(ctx, tx, name)
		if err != nil {
			return err
		}
		if patch.AllowanceAmount != nil {
			p.AllowanceAmount = *patch.AllowanceAmount
		}
		if patch.Period != nil {
			p.Period = *patch.Period
		}
		if patch.TimeZone != nil {
			p.TimeZone = *patch.TimeZone
		}
		if patch.PoolEnabled != nil {
			p.PoolEnabled = *patch.PoolEnabled
		}
		if patch.SetPerUserLimit {
			p.PoolPerUserLimit = patch.PoolPerUserLimit
		}
		if p, err = updateProjectSettings(ctx, tx, p); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "project.update", Target: p.Name, Details: details}); err != nil {
			return err
		}
		// Mirrored before commit: if Redis is down, nothing changes.
		if err := e.syncProjectToRedis(ctx, p); err != nil {
			return err
		}
		// Leases taken under the old settings end before this returns.
		return e.recall(ctx, p.ID)
	})
	if err != nil {
		return Project{}, err
	}
	return e.GetProject(ctx, name)
}

// DeleteProject removes a project without users, and its Redis hash. Its
// usage history stays (events and the rollup keep the name as text).
// ErrConflict while users are assigned: the project row is locked first,
// and assigning a user takes a key-share lock on it through the foreign
// key, so an assignment racing the delete either is counted here or waits
// and then fails on the missing project.
func (e *Engine) DeleteProject(ctx context.Context, actor, name string) error {
	return pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		p, err := lockProject(ctx, tx, name)
		if err != nil {
			return err
		}
		if p.Users > 0 {
			them := "them"
			if p.Users == 1 {
				them = "it"
			}
			return refuse(ErrConflict, "Project %q has %s; move or delete %s first.", name, Plural(p.Users, "user", "users"), them)
		}
		if err := deleteProjectRow(ctx, tx, p.ID); err != nil {
			return err
		}
		if err := e.livePool(ctx, []*Project{&p}); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "project.delete", Target: p.Name,
			Details: map[string]any{"pool_balance": p.PoolBalance}}); err != nil {
			return err
		}
		// Before commit: should the commit fail, a missing hash is simply
		// reloaded from Postgres on demand.
		return unavailable(e.rdb.Del(ctx, e.keys.ProjectShard(p.ID).Project(p.ID)).Err())
	})
}
