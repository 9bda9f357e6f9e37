package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// field is the user hash field of a bucket an admin can adjust ("" is
// awarded): the personal balances, not the allowance or the pool.
func (b Bucket) field() (string, error) {
	switch b {
	case BucketAwarded, "":
		return userAwarded, nil
	case BucketPurchased:
		return userPurchased, nil
	}
	return "", invalid("bucket", `must be "awarded" or "purchased"`)
}

// adjustment is one admin balance change: a user's bucket (user set) or a
// project's pool.
type adjustment struct {
	user    *User    // set for awarded/purchased changes
	project *Project // set for pool changes
	field   string   // userAwarded, userPurchased or projectPool
	delta   Credits
	kind    string
	actor   string
	note    string
	audit   AuditEntry
}

// adjustCall builds the script call: adjust_user.lua for a user (due
// refills and grants first, as a charge would), adjust_pool.lua for a pool.
func (e *Engine) adjustCall(a adjustment, id string, now time.Time) (*scriptCall, error) {
	if u := a.user; u != nil {
		start, month, err := userPeriods(u, now)
		if err != nil {
			return nil, err
		}
		c := getCall(adjustUserScript)
		sh := e.keys.ShardOf(u.ProjectID, u.ID)
		args := adjustUserArgs{UserKey: sh.User(u.ID), ProjectKey: sh.Project(u.ProjectID),
			EventsKey: sh.Events(), NowMs: now.UnixMilli(), AllowanceStart: start, Month: month,
			Delta: a.delta, EventID: id, UserID: u.ID, Field: a.field, Kind: a.kind, Actor: a.actor, Note: a.note}
		args.fill(c)
		return c, nil
	}
	p := a.project
	c := getCall(adjustPoolScript)
	sh := e.keys.ProjectShard(p.ID)
	args := adjustPoolArgs{ProjectKey: sh.Project(p.ID), EventsKey: sh.Events(), Field: a.field,
		Delta: a.delta, Max: MaxCredits, EventID: id, Kind: a.kind, NowMs: now.UnixMilli(), ProjectID: p.ID,
		ProjectName: p.Name, Actor: a.actor, Note: a.note}
	args.fill(c)
	return c, nil
}

// parse reads the answer of the script adjustCall chose.
func (a adjustment) parse(res []int64) (adjustAnswer, error) {
	if a.user != nil {
		return parseAdjustUserAnswer(res)
	}
	return parseAdjustPoolAnswer(res)
}

// adjust applies a balance change and records its event in Postgres before
// returning, with the audit entry in the same transaction.
func (e *Engine) adjust(ctx context.Context, a adjustment) error {
	if err := a.delta.CheckRange(); err != nil {
		return invalid("delta", fmt.Sprintf("must be between -%s and %s", MaxCredits, MaxCredits))
	}
	id, now := e.ids.Next(), e.cfg.Now()
	var res adjustAnswer
	for attempt := 0; attempt < 3; attempt++ {
		c, err := e.adjustCall(a, id, now)
		if err != nil {
			return err
		}
		err = e.runner.Run(ctx, c)
		if err == nil {
			res, err = a.parse(c.Res)
		}
		putCall(c)
		if err != nil {
			return err
		}
		switch {
		case res.Status == scriptNoUser && a.user != nil:
			var found bool
			if _, found, err = e.loadUser(ctx, a.user.ID); err == nil && !found {
				return noUser(a.user.Username)
			}
		case res.Status == scriptNoUser:
			err = e.loadProject(ctx, a.project.ID)
		case res.Status == scriptNoProject:
			err = e.loadProject(ctx, a.user.ProjectID)
		default:
			attempt = 3
		}
		if err != nil {
			return err
		}
	}
	switch res.Status {
	case scriptOK:
	case scriptInsufficient:
		return a.insufficient(res.Balance)
	case scriptTooLarge:
		return invalid("delta", fmt.Sprintf("would take the balance of %s above the maximum of %s", res.Balance, MaxCredits))
	case scriptDeleted:
		// Deleted after the caller read it from Postgres.
		return noUser(a.user.Username)
	default:
		return fmt.Errorf("%w: balance not loaded into Redis", ErrUnavailable)
	}
	ev := Event{ID: id, Kind: a.kind, At: time.UnixMilli(now.UnixMilli()).UTC(), Actor: a.actor, Note: a.note}
	if u := a.user; u != nil {
		ev.UserID, ev.Username, ev.ProjectID, ev.ProjectName = u.ID, u.Username, u.ProjectID, u.ProjectName
	} else {
		ev.ProjectID, ev.ProjectName = a.project.ID, a.project.Name
	}
	switch a.field {
	case userAwarded:
		ev.Awarded = a.delta
	case userPurchased:
		ev.Purchased = a.delta
	case projectPool:
		ev.Pool = a.delta
	}
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		if _, err := e.applyEvents(ctx, tx, []Event{ev}); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a.audit)
	})
	if err != nil {
		// Redis has the change and its event is in the stream, so the
		// reconciler will record it: retrying would apply it twice.
		return fmt.Errorf("%w: change %s applied but not yet recorded in Postgres (the reconciler will record it; do not retry): %v",
			ErrUnavailable, id, err)
	}
	return nil
}

// insufficient is the refusal of a change that would take the balance,
// which holds have, below zero.
func (a adjustment) insufficient(have Credits) error {
	if a.user == nil {
		return refuse(ErrInsufficient, "The pool balance of project %q is %s; a change of %s would take it below zero.",
			a.project.Name, have, a.delta)
	}
	bucket := BucketAwarded
	if a.field == userPurchased {
		bucket = BucketPurchased
	}
	return refuse(ErrInsufficient, "The %s balance of user %q is %s; a change of %s would take it below zero.",
		bucket, a.user.Username, have, a.delta)
}

// AdjustCredits adds delta (negative to remove) to a user's awarded or
// purchased credits. ErrInsufficient when the bucket would go below zero.
func (e *Engine) AdjustCredits(ctx context.Context, actor, username string, bucket Bucket, delta Credits, note string) (UserView, error) {
	field, err := bucket.field()
	if err != nil {
		return UserView{}, err
	}
	if bucket == "" {
		bucket = BucketAwarded
	}
	if delta == 0 {
		return UserView{}, invalid("delta", "must not be zero")
	}
	if err := CheckText("note", note, MaxNoteLength); err != nil {
		return UserView{}, err
	}
	u, err := getUserByName(ctx, e.db, username)
	if err != nil {
		return UserView{}, err
	}
	err = e.withLeasesRecalled(ctx, 0, []int64{u.ID}, func() error {
		return e.adjust(ctx, adjustment{user: &u, field: field, delta: delta, kind: KindAdjust, actor: actor, note: note,
			audit: AuditEntry{Actor: actor, Action: "user.credits", Target: u.Username,
				Details: map[string]any{"bucket": string(bucket), "delta": delta, "note": note}}})
	})
	if err != nil {
		return UserView{}, err
	}
	return e.GetUser(ctx, username)
}

// AdjustPool adds delta to a project's common pool. ErrInsufficient when the
// pool would go below zero.
func (e *Engine) AdjustPool(ctx context.Context, actor, name string, delta Credits, note string) (Project, error) {
	if delta == 0 {
		return Project{}, invalid("delta", "must not be zero")
	}
	if err := CheckText("note", note, MaxNoteLength); err != nil {
		return Project{}, err
	}
	p, err := getProjectByName(ctx, e.db, name)
	if err != nil {
		return Project{}, err
	}
	err = e.withLeasesRecalled(ctx, p.ID, nil, func() error {
		return e.adjust(ctx, adjustment{project: &p, field: projectPool, delta: delta, kind: KindPool, actor: actor, note: note,
			audit: AuditEntry{Actor: actor, Action: "project.pool", Target: p.Name,
				Details: map[string]any{"delta": delta, "note": note}}})
	})
	if err != nil {
		return Project{}, err
	}
	return e.GetProject(ctx, name)
}
