package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Moving a user to a project in another shard (redis_shards > 1): a script
// touches one slot, so the user's hash cannot move in one. Inside the
// patch's transaction (the user's row locked, not yet committed):
//
//  0. the move is written to pending_moves (committed at once, apart);
//  1. move_out.lua in the old shard turns the user's hash into a
//     tombstone naming the move (no script uses it any more), refusing
//     while the user has requests in flight or credit leases open;
//  2. move_in.lua in the new shard copies the hash there;
//  3. patch_user.lua in the new shard applies the move, as within a shard
//     (the allowance parked, the new project's resumed or fresh, events);
//  4. Postgres commits; the key index names the new project; the row in
//     pending_moves goes.
//
// Each step is idempotent, keyed by the move's id. A gateway that fails
// before Postgres commits undoes steps 1 and 2 (a step 3 that ran is kept:
// its events are in the stream, and the move is then finished in Postgres,
// as below). The sweeper takes the rows a crash left (finishPendingMoves):
// with the user's row locked, a move Postgres committed, or whose step 3
// ran, is finished; one it never committed is undone. A charge that meets
// the tombstone drops its cached entry and looks the user up again: the
// key index, then Postgres, say where the user is.

var (
	moveOutScript  = mustScript("move_out.lua")
	moveInScript   = mustScript("move_in.lua")
	moveUndoScript = mustScript("move_undo.lua")
)

// moveTombstoneTTL is how long the old shard keeps a moved user's
// tombstone: far beyond the sweeper's grace, so a move left half done
// finds the fields to copy.
const moveTombstoneTTL = 7 * 24 * time.Hour

// pendingMoveGrace is how old a pending move must be before the sweeper
// takes it: younger ones are their gateway's.
const pendingMoveGrace = time.Minute

// Answers of move_out.lua besides scriptOK, scriptNoUser, scriptDeleted.
const (
	moveInFlight   = 5
	moveLeasesOpen = 6
)

// pendingMove is a row of pending_moves.
type pendingMove struct {
	id          string
	userID      int64
	fromProject int64
	toProject   int64
	newVersion  int64
	actor       string
	at          time.Time
}

// moveOut runs steps 0 to 2 of a move between shards for user old, who
// becomes u (version u.Version), and returns the move.
func (e *Engine) moveOut(ctx context.Context, actor string, old, u User) (pendingMove, error) {
	m := pendingMove{id: e.ids.Next(), userID: u.ID, fromProject: old.ProjectID, toProject: u.ProjectID,
		newVersion: u.Version, actor: actor, at: e.cfg.Now()}
	// A transfer's step left to the sweeper finds its user in the shard
	// Postgres names; its marker is in the old one.
	if pending, err := hasPendingTransfer(ctx, e.db, u.ID); err != nil {
		return m, err
	} else if pending {
		return m, refuse(ErrConflict, "User %q has a transfer between shards in progress; try again shortly.", old.Username)
	}
	if err := insertPendingMove(ctx, e.db, m); err != nil {
		return m, fmt.Errorf("record move: %w", err)
	}
	if err := e.moveSteps(ctx, m, old.Username); err != nil {
		return m, errors.Join(err, e.undoMove(ctx, m))
	}
	return m, nil
}

// moveSteps runs move_out.lua (loading the user into its old shard when
// Redis lacks it) and move_in.lua.
func (e *Engine) moveSteps(ctx context.Context, m pendingMove, username string) error {
	from := e.keys.ShardOf(m.fromProject, m.userID)
	for attempt := 0; ; attempt++ {
		c := getCall(moveOutScript)
		c.Keys = append(c.Keys, from.User(m.userID), from.InFlight(m.userID), from.UserCreditLeases(m.userID))
		c.Args = append(c.Args, m.id, e.cfg.Now().UnixMilli(), m.newVersion, int64(moveTombstoneTTL/time.Second))
		err := e.runner.Run(ctx, c)
		res := append([]int64(nil), c.Res...)
		putCall(c)
		if err != nil {
			return err
		}
		switch {
		case res[0] == scriptOK:
		case res[0] == scriptNoUser && attempt == 0:
			if _, _, err := e.loadUser(ctx, m.userID); err != nil {
				return err
			}
			continue
		case res[0] == moveInFlight && len(res) > 1:
			done := "they are"
			if res[1] == 1 {
				done = "it is"
			}
			return refuse(ErrConflict, "User %q has %s in flight; it can move to a project in another shard when %s done.",
				username, Plural(res[1], "request", "requests"), done)
		case res[0] == moveLeasesOpen:
			return refuse(ErrConflict, "User %q has credit leases open; try again in a moment.", username)
		case res[0] == scriptDeleted:
			return noUser(username)
		default:
			return fmt.Errorf("move_out answered %v", res)
		}
		break
	}
	fields, err := e.rdb.HGetAll(ctx, from.User(m.userID)).Result()
	if err != nil {
		return unavailable(err)
	}
	if fields[userMovedOut] != m.id {
		return fmt.Errorf("%w: user %q's old hash is not this move's tombstone", ErrUnavailable, username)
	}
	c := getCall(moveInScript)
	defer putCall(c)
	c.Keys = append(c.Keys, e.keys.ShardOf(m.toProject, m.userID).User(m.userID))
	c.Args = append(c.Args, m.id)
	for k, v := range fields {
		switch k {
		case userDeleted, userMovedOut, userMovedFrom, userMovedIn:
		case userVersion:
			c.Args = append(c.Args, k, fields[userMovedFrom]) // as before the move: patch_user.lua applies it
		default:
			c.Args = append(c.Args, k, v)
		}
	}
	return e.runner.Run(ctx, c)
}

// undoMove undoes steps 1 and 2 of a move Postgres did not commit.
func (e *Engine) undoMove(ctx context.Context, m pendingMove) error {
	for _, side := range []struct {
		shard *ShardKeys
		which string
	}{{e.keys.ShardOf(m.toProject, m.userID), "in"}, {e.keys.ShardOf(m.fromProject, m.userID), "out"}} {
		c := getCall(moveUndoScript)
		c.Keys = append(c.Keys, side.shard.User(m.userID))
		c.Args = append(c.Args, m.id, side.which)
		err := e.runner.Run(ctx, c)
		putCall(c)
		if err != nil {
			return fmt.Errorf("undo move %s (%s): %w; the sweeper tries again", m.id, side.which, err)
		}
	}
	_, err := deletePendingMove(ctx, e.db, m.id)
	return err
}

// moveDone forgets a move Postgres committed. (patch_user.lua's caller,
// patchInShard, pointed the key index at the new project.)
func (e *Engine) moveDone(ctx context.Context, m pendingMove) error {
	_, err := deletePendingMove(ctx, e.db, m.id)
	return err
}

// finishPendingMoves finishes or undoes the moves their gateways left
// half done; the sweeper runs it.
func (e *Engine) finishPendingMoves(ctx context.Context) (int, error) {
	pending, err := pendingMovesBefore(ctx, e.db, e.cfg.Now().Add(-pendingMoveGrace), 100)
	if err != nil {
		return 0, err
	}
	finished := 0
	var failed error
	for _, m := range pending {
		// One that fails is tried again at the next run; the others go on.
		if err := e.finishMove(ctx, m); err != nil {
			failed = errors.Join(failed, fmt.Errorf("move %s of user %d: %w", m.id, m.userID, err))
			continue
		}
		finished++
	}
	return finished, failed
}

// finishMove settles one pending move, with the user's row locked so the
// gateway that began it, if alive, is done with it.
func (e *Engine) finishMove(ctx context.Context, m pendingMove) error {
	return pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		if err := lockUserRows(ctx, tx, m.userID); err != nil {
			return err
		}
		u, err := getUserByID(ctx, tx, m.userID)
		if errors.Is(err, ErrNotFound) {
			// Deleted since: its tombstones expire by themselves.
			_, err := deletePendingMove(ctx, tx, m.id)
			return err
		}
		if err != nil {
			return err
		}
		to := e.keys.ShardOf(m.toProject, m.userID)
		newVersion, err := e.rdb.HGet(ctx, to.User(m.userID), userVersion).Int64()
		patched := err == nil && newVersion >= m.newVersion
		committed := u.Version >= m.newVersion && u.ProjectID == m.toProject
		switch {
		case committed && patched:
		case committed:
			// Committed, but the gateway died before step 3 finished:
			// run the steps again (each is idempotent), then the patch.
			old := u
			old.ProjectID, old.ProjectName, old.projectTZ = m.fromProject, "", "UTC"
			if m.fromProject != 0 {
				p, err := getProjectByID(ctx, tx, m.fromProject)
				if err != nil {
					return err
				}
				old.ProjectName, old.projectTZ = p.Name, p.TimeZone
			}
			if err := e.moveSteps(ctx, m, u.Username); err != nil {
				return err
			}
			if _, err := e.patchInShard(ctx, m.actor, old, u, e.cfg.Now(), false, true, false); err != nil {
				return err
			}
		case patched:
			// Step 3 ran and its events are in the stream, but Postgres
			// did not commit: the move is made there too.
			if err := setUserProject(ctx, tx, m.userID, m.toProject, m.newVersion); err != nil {
				return err
			}
			if u, err = getUserByID(ctx, tx, m.userID); err != nil {
				return err
			}
			if err := insertAudit(ctx, tx, AuditEntry{Actor: m.actor, Action: "user.update", Target: u.Username,
				Details: map[string]any{"project": map[string]any{"to": nullable(u.ProjectName)},
					"finished_by": "sweeper: the move was applied in Redis before its gateway stopped"}}); err != nil {
				return err
			}
			e.log.Warn("a move between shards its gateway left after applying it in Redis is now committed in Postgres",
				zap.String("move", m.id), zap.Int64("user", m.userID))
		default:
			return e.undoMove(ctx, m)
		}
		// The gateway may have died before patchInShard's index write.
		if err := indexUsers(ctx, e.rdb, e.keys, []User{u}, nil); err != nil {
			return unavailable(err)
		}
		return e.moveDone(ctx, m)
	})
}
