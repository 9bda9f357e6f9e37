package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// KindTransfer marks the two events of a transfer of awarded credits.
const KindTransfer = "transfer"

var transferScript = mustScript("transfer.lua")

// Transfer moves amount of awarded credits from one user to another,
// atomically: both balances and both events change in one script, and both
// events reach Postgres in one transaction with the audit entries before it
// returns. ErrInsufficient when from lacks the credits.
func (e *Engine) Transfer(ctx context.Context, actor, from, to string, amount Credits, note string) (UserView, UserView, error) {
	switch {
	case from == "":
		return UserView{}, UserView{}, invalid("from", "is required")
	case to == "":
		return UserView{}, UserView{}, invalid("to", "is required")
	case !ValidName(from):
		return UserView{}, UserView{}, invalid("from", "must be a username")
	case !ValidName(to):
		return UserView{}, UserView{}, invalid("to", "must be a username")
	case from == to:
		return UserView{}, UserView{}, invalid("to", "must be another user than from")
	case amount <= 0:
		return UserView{}, UserView{}, invalid("amount", "must be greater than 0")
	case amount > MaxCredits:
		return UserView{}, UserView{}, invalid("amount", "must be at most 9007199254.740991")
	}
	if err := CheckText("note", note, MaxNoteLength); err != nil {
		return UserView{}, UserView{}, err
	}
	src, err := getUserByName(ctx, e.db, from)
	if err != nil {
		return UserView{}, UserView{}, err
	}
	dst, err := getUserByName(ctx, e.db, to)
	if err != nil {
		return UserView{}, UserView{}, err
	}
	err = e.withLeasesRecalled(ctx, 0, []int64{src.ID, dst.ID}, func() error {
		return e.transfer(ctx, actor, src, dst, amount, note)
	})
	if err != nil {
		return UserView{}, UserView{}, err
	}
	a, err := e.GetUser(ctx, from)
	if err != nil {
		return UserView{}, UserView{}, err
	}
	b, err := e.GetUser(ctx, to)
	return a, b, err
}

// transfer moves the credits between two users as read from Postgres; the
// script refuses either of them deleted since.
func (e *Engine) transfer(ctx context.Context, actor string, src, dst User, amount Credits, note string) error {
	from, to := src.Username, dst.Username
	sh := e.keys.ShardOf(src.ProjectID, src.ID)
	if e.keys.ShardOf(dst.ProjectID, dst.ID) != sh {
		return e.transferAcrossShards(ctx, actor, src, dst, amount, note)
	}
	outID, inID, now := e.ids.Next(), e.ids.Next(), e.cfg.Now()
	var res []int64
	for attempt := 0; attempt < 3; attempt++ {
		c := getCall(transferScript)
		c.Keys = append(c.Keys, sh.User(src.ID), sh.User(dst.ID), sh.Events())
		c.Args = append(c.Args, int64(amount), int64(MaxCredits), outID, inID, now.UnixMilli(), actor, note,
			src.ID, src.ProjectName, dst.ID, dst.ProjectName)
		err := e.runner.Run(ctx, c)
		res = append(res[:0], c.Res...)
		putCall(c)
		if err != nil {
			return err
		}
		if res[0] != scriptNoUser {
			break
		}
		missing := src
		if len(res) > 1 && res[1] == 2 {
			missing = dst
		}
		_, found, err := e.loadUser(ctx, missing.ID)
		if err != nil {
			return err
		}
		if !found {
			return noUser(missing.Username)
		}
	}
	switch res[0] {
	case scriptOK:
	case scriptInsufficient:
		return refuse(ErrInsufficient, "The awarded balance of user %q is %s, less than the %s to transfer.", from, Credits(res[1]), amount)
	case scriptTooLarge:
		return invalid("amount", fmt.Sprintf("would take %q's awarded credits above the maximum %s", to, MaxCredits))
	case scriptDeleted:
		// Deleted after it was read from Postgres.
		name := from
		if len(res) > 1 && res[1] == 2 {
			name = to
		}
		return noUser(name)
	default:
		return fmt.Errorf("%w: user balances not loaded into Redis", ErrUnavailable)
	}
	at := time.UnixMilli(now.UnixMilli()).UTC()
	events := []Event{
		{ID: outID, Kind: KindTransfer, At: at, UserID: src.ID, Username: src.Username, ProjectID: src.ProjectID,
			ProjectName: src.ProjectName, Awarded: -amount, Actor: actor, Note: note},
		{ID: inID, Kind: KindTransfer, At: at, UserID: dst.ID, Username: dst.Username, ProjectID: dst.ProjectID,
			ProjectName: dst.ProjectName, Awarded: amount, Actor: actor, Note: note},
	}
	details := map[string]any{"from": from, "to": to, "amount": amount, "note": note}
	err := e.applyWithRetry(ctx, func(tx pgx.Tx) error {
		if err := lockUserRows(ctx, tx, src.ID, dst.ID); err != nil {
			return err
		}
		if _, err := e.applyEvents(ctx, tx, events); err != nil {
			return err
		}
		// One entry per user, so each user's audit trail shows the transfer.
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "transfer.out", Target: from, Details: details}); err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "transfer.in", Target: to, Details: details})
	})
	if err != nil {
		// Redis has moved the credits and both events are in the stream:
		// the reconciler will record them, so a retry would move them twice.
		return fmt.Errorf("%w: transfer %s applied but not yet recorded in Postgres (the reconciler will record it; do not retry): %v",
			ErrUnavailable, outID, err)
	}
	return nil
}

// applyWithRetry runs fn in a transaction, again when Postgres aborted it as
// a deadlock victim or serialization failure (a reconciler batch may lock
// the same user rows in another order). fn must be idempotent, which event
// application is.
func (e *Engine) applyWithRetry(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = pgx.BeginFunc(ctx, e.db, fn)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			return err
		}
	}
	return err
}
