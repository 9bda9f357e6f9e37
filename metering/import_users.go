package metering

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// errUsernameRace: a username became taken between the check and the insert.
var errUsernameRace = refuse(ErrConflict, "A username in the import was taken by a concurrent change; nothing was imported.")

// ImportedRow is the outcome of one import row. APIKey is set only on a
// real, successful import, and is shown this once.
type ImportedRow struct {
	Line     int
	Username string
	Err      string
	APIKey   string
}

// ImportResult is the outcome of an import: every row, and how many users
// were created (0 for a dry run or a rejected file).
type ImportResult struct {
	Rows    []ImportedRow
	Created int
}

// OK reports whether every row is valid.
func (r ImportResult) OK() bool {
	for _, row := range r.Rows {
		if row.Err != "" {
			return false
		}
	}
	return true
}

// redisImportBatch bounds the commands sent in one pipeline when mirroring
// an import into Redis.
const redisImportBatch = 1000

// ImportUsers creates every row's user, or none: when a row is invalid
// (including an unknown project or a taken username) nothing is written
// and the rows say why. A dry run only checks.
//
// It does in bulk what CreateUser does per user: one transaction inserts
// the users, their keys and the initial-credit events (applied to balances
// by applyEvents, the ledger's only way in), mirrors the users into Redis
// through load.lua in pipelined batches, and commits only after Redis has
// them, so the keys work as soon as the call returns. The events are
// durable in Postgres before it returns; they never pass through the
// stream, and Redis gets the balances they produced, so Postgres balance +
// unreconciled events = Redis balance holds throughout.
func (e *Engine) ImportUsers(ctx context.Context, actor string, rows []ImportRow, dryRun bool) (ImportResult, error) {
	now := e.cfg.Now()
	res := ImportResult{Rows: make([]ImportedRow, len(rows))}
	for i := range rows {
		row := &rows[i]
		res.Rows[i] = ImportedRow{Line: row.Line, Username: row.Spec.Username, Err: row.Err}
		if row.Err == "" {
			// The parser checked this already; callers other than it may not have.
			var inv *InvalidError
			if err := row.Spec.validate(now); errors.As(err, &inv) {
				res.Rows[i].Err = inv.Sentence()
			}
		}
	}
	if len(rows) == 0 {
		return res, invalid("body", "There are no rows to import")
	}
	// Checked outside the transaction first so that a dry run and a
	// rejected file report every problem without taking locks; checked
	// again under lock below, as things may change meanwhile.
	if _, err := e.checkImport(ctx, e.db, rows, res.Rows, false, now); err != nil || dryRun || !res.OK() {
		return res, err
	}
	keys := make([]string, len(rows))
	infos := make([]APIKeyInfo, len(rows))
	for i := range rows {
		var err error
		if keys[i], infos[i], err = e.newKey(now, rows[i].Spec.KeyExpiresAt); err != nil {
			return res, err
		}
	}
	var mirrored []User
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		projects, err := e.checkImport(ctx, tx, rows, res.Rows, true, now)
		if err != nil || !res.OK() {
			return err
		}
		users := make([]User, len(rows))
		for i := range rows {
			s := &rows[i].Spec
			u := User{Username: s.Username, MonthlyGrant: s.MonthlyGrant, Partner: s.Partner, Active: !rows[i].Inactive}
			loc := time.UTC
			if s.Project != "" {
				p := projects[s.Project]
				u.ProjectID, u.ProjectName = p.ID, p.Name
				loc, _ = LoadLocation(p.TimeZone)
			}
			// As in CreateUser: the first grant is on the next 1st, unless
			// the file says through which month grants are paid (an export).
			u.GrantMonth = grantStartMonth(loc, now)
			if paid := rows[i].GrantsPaidThrough; paid > 0 {
				u.GrantMonth = paid
			}
			users[i] = u
		}
		ids, err := insertUsersBulk(ctx, tx, users)
		if err != nil {
			return err
		}
		userIDs := make([]int64, len(rows))
		for i := range users {
			users[i].ID = ids[users[i].Username]
			userIDs[i] = users[i].ID
		}
		if err := insertKeysBulk(ctx, tx, userIDs, infos); err != nil {
			return err
		}
		if _, err := e.applyEvents(ctx, tx, e.initialCreditEvents(actor, rows, users, now)); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, importAudit(actor, rows, projects)); err != nil {
			return err
		}
		fresh, err := usersByIDs(ctx, tx, userIDs)
		if err != nil {
			return err
		}
		mirrored = fresh
		for _, p := range projects {
			if err := e.syncProjectToRedis(ctx, p); err != nil {
				return err
			}
		}
		return e.mirrorUsers(ctx, fresh)
	})
	if err != nil {
		if mirrored != nil {
			// Redis got users whose transaction did not commit. Their ids are
			// never reused and their keys were never shown, so they are inert;
			// removing them just keeps Redis tidy.
			e.unmirrorUsers(context.WithoutCancel(ctx), mirrored)
		}
		return res, err
	}
	if !res.OK() {
		return res, nil
	}
	for i := range res.Rows {
		res.Rows[i].APIKey = keys[i]
	}
	res.Created = len(rows)
	return res, nil
}

// checkImport marks rows whose project does not exist, whose username is
// taken or whose grants are said to be paid ahead of now, and returns the
// projects named. lock holds those projects against deletion until the
// transaction q ends.
func (e *Engine) checkImport(ctx context.Context, q querier, rows []ImportRow, out []ImportedRow, lock bool, now time.Time) (map[string]Project, error) {
	var names, projectNames []string
	seenProject := map[string]bool{}
	for _, r := range rows {
		if r.Spec.Username != "" {
			names = append(names, r.Spec.Username)
		}
		if p := r.Spec.Project; p != "" && !seenProject[p] {
			seenProject[p] = true
			projectNames = append(projectNames, p)
		}
	}
	projects, err := projectsByName(ctx, q, projectNames, lock)
	if err != nil {
		return nil, fmt.Errorf("import: read projects: %w", err)
	}
	taken, err := takenUsernames(ctx, q, names)
	if err != nil {
		return nil, fmt.Errorf("import: read usernames: %w", err)
	}
	for i, r := range rows {
		if out[i].Err != "" {
			continue
		}
		switch {
		case taken[r.Spec.Username]:
			out[i].Err = fmt.Sprintf("The username %q is taken by another user.", r.Spec.Username)
		case r.Spec.Project != "" && projects[r.Spec.Project].ID == 0:
			out[i].Err = fmt.Sprintf("There is no project named %q; an import does not create projects: create it first (POST /projects).",
				r.Spec.Project)
		case r.GrantsPaidThrough > 0:
			loc := time.UTC
			if p, ok := projects[r.Spec.Project]; ok {
				loc, _ = LoadLocation(p.TimeZone)
			}
			if current := MonthIndex(loc, now); r.GrantsPaidThrough > current {
				out[i].Err = fmt.Sprintf("The grants_paid_through %s is after the current month, %s; grants cannot have been paid ahead.",
					FormatMonth(r.GrantsPaidThrough), FormatMonth(current))
			}
		}
	}
	return projects, nil
}

// initialCreditEvents are the events CreateUser would record through
// AdjustCredits: an adjustment per non-zero bucket, noted "initial credits".
func (e *Engine) initialCreditEvents(actor string, rows []ImportRow, users []User, now time.Time) []Event {
	at := time.UnixMilli(now.UnixMilli()).UTC()
	var events []Event
	for i := range rows {
		s, u := &rows[i].Spec, &users[i]
		base := Event{Kind: KindAdjust, At: at, UserID: u.ID, Username: u.Username,
			ProjectID: u.ProjectID, ProjectName: u.ProjectName, Actor: actor, Note: "initial credits"}
		if s.InitialCredits > 0 {
			ev := base
			ev.ID, ev.Awarded = e.ids.Next(), s.InitialCredits
			events = append(events, ev)
		}
		if s.Purchased > 0 {
			ev := base
			ev.ID, ev.Purchased = e.ids.Next(), s.Purchased
			events = append(events, ev)
		}
	}
	return events
}

// importAudit is the single audit entry of an import: counts and totals,
// never a key (nor, to keep it small, every username).
func importAudit(actor string, rows []ImportRow, projects map[string]Project) AuditEntry {
	var awarded, purchased Credits
	partners, unassigned, inactive := 0, 0, 0
	for _, r := range rows {
		awarded += r.Spec.InitialCredits
		purchased += r.Spec.Purchased
		if r.Spec.Partner {
			partners++
		}
		if r.Inactive {
			inactive++
		}
		if r.Spec.Project == "" {
			unassigned++
		}
	}
	names := make([]string, 0, len(projects))
	for n := range projects {
		names = append(names, n)
	}
	return AuditEntry{Actor: actor, Action: "user.import", Target: strconv.Itoa(len(rows)) + " users",
		Details: map[string]any{"created": len(rows), "initial_credits": awarded, "purchased": purchased,
			"partners": partners, "unassigned": unassigned, "inactive": inactive, "projects": names,
			"first": rows[0].Spec.Username, "last": rows[len(rows)-1].Spec.Username}}
}

// mirrorUsers writes users into Redis with load.lua, as syncUserToRedis
// does for one, in pipelined batches.
func (e *Engine) mirrorUsers(ctx context.Context, users []User) error {
	// Through the script runner, which pipelines the calls and resends any
	// that meet a Redis that lost its scripts (restart, SCRIPT FLUSH).
	for start := 0; start < len(users); start += redisImportBatch {
		batch := users[start:min(start+redisImportBatch, len(users))]
		calls := make([]*scriptCall, len(batch))
		for i := range batch {
			calls[i] = e.userLoadCall(&batch[i])
		}
		err := e.runner.RunAll(ctx, calls)
		for _, c := range calls {
			if err == nil {
				err = c.Err
			}
			putCall(c)
		}
		if err == nil {
			err = indexUsers(ctx, e.rdb, e.keys, batch, nil)
		}
		if err != nil {
			return unavailable(fmt.Errorf("mirror imported users into Redis: %w", err))
		}
	}
	return nil
}

// unmirrorUsers removes users that mirrorUsers wrote but Postgres did not
// commit. Best effort: leftovers are unreachable anyway.
func (e *Engine) unmirrorUsers(ctx context.Context, users []User) {
	_, _ = e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range users {
			p.Del(ctx, e.keys.ShardOf(users[i].ProjectID, users[i].ID).User(users[i].ID))
			if k := users[i].Key; k != nil {
				p.HDel(ctx, e.keys.KeyIndex(), string(k.Hash[:]))
			}
		}
		return nil
	})
}
