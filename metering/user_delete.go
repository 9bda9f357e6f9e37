package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

var deleteUserScript = mustScript("delete_user.lua")

// deleteTombstoneTTL is how long a deleted user's Redis hash stays as a
// tombstone; far longer than any transaction that could race the delete.
const deleteTombstoneTTL = time.Hour

// DeleteUser removes a user and its key from Postgres and Redis. Its
// events stay in the ledger (they carry the username as text and no
// foreign key). ErrConflict while the user has requests in flight.
//
// Order matters: inside the transaction, with the user row locked and
// deleted but not committed, delete_user.lua checks the in-flight set and
// retires the user in Redis in one atomic step. A charge that ran first is
// in flight and makes the delete refuse; one that runs after finds no key.
// Only then does Postgres commit. Should the commit fail, the user stays
// unusable until the tombstone expires and it reloads from Postgres.
func (e *Engine) DeleteUser(ctx context.Context, actor, username string) error {
	var dropped *KeyHash
	var deleted int64
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		u, err := lockUserByName(ctx, tx, username)
		if err != nil {
			return err
		}
		deleted = u.ID
		if pending, err := hasPendingTransfer(ctx, tx, u.ID); err != nil {
			return err
		} else if pending {
			return refuse(ErrConflict, "User %q has a transfer between shards in progress; try again shortly.", username)
		}
		v, err := bumpUserVersion(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		if err := deleteUserRow(ctx, tx, u.ID); err != nil {
			return fmt.Errorf("delete user %q: %w", username, err)
		}
		details := map[string]any{"project": u.ProjectName}
		kh := ""
		if u.Key != nil {
			details["key_prefix"] = u.Key.Prefix
			kh, dropped = string(u.Key.Hash[:]), &u.Key.Hash
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.delete", Target: u.Username, Details: details}); err != nil {
			return err
		}
		c := getCall(deleteUserScript)
		defer putCall(c)
		sh := e.keys.ShardOf(u.ProjectID, u.ID)
		c.Keys = append(c.Keys, sh.User(u.ID), sh.InFlight(u.ID))
		c.Args = append(c.Args, e.cfg.Now().UnixMilli(), v, int64(deleteTombstoneTTL/time.Second))
		if err := e.runner.Run(ctx, c); err != nil {
			return err
		}
		if c.Res[0] == 1 && len(c.Res) > 1 {
			done := "they are"
			if c.Res[1] == 1 {
				done = "it is"
			}
			return refuse(ErrConflict, "User %q has %s in flight; try again when %s done.", username,
				Plural(c.Res[1], "request", "requests"), done)
		}
		if c.Res[0] != scriptOK {
			return fmt.Errorf("delete script answered %v", c.Res)
		}
		// Before the commit, as the script did when it held the index:
		// should the commit fail, the next key-index sync puts it back.
		if kh != "" {
			return unavailable(e.rdb.HDel(ctx, e.keys.KeyIndex(), kh).Err())
		}
		return nil
	})
	if err == nil && dropped != nil {
		e.cache.drop(*dropped)
	}
	if err == nil {
		// The user's leases end (what they hold is forfeited, the pool's
		// part goes back to the pool) before this returns.
		err = e.recall(ctx, 0, deleted)
	}
	return err
}
