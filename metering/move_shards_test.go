package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// moveWorld has projects a (allowance 5 a day, a pool) and b (allowance 3)
// and user u in a with 10 awarded credits, its keys in the given number of
// shards; with more than one, a and b are in different shards.
func moveWorld(t *testing.T, shards int) (*world, string) {
	t.Helper()
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(monday), RedisShards: shards})
	w := &world{Bundle: b, ctx: context.Background()}
	pa := w.project(t, metering.ProjectSpec{Name: "a", AllowanceAmount: cr(5), Period: metering.PeriodDaily,
		PoolEnabled: true, PoolBalance: cr(20)})
	pb := w.project(t, metering.ProjectSpec{Name: "b", AllowanceAmount: cr(3), Period: metering.PeriodDaily})
	if shards > 1 {
		keys := w.Engine.Keys()
		require.NotEqual(t, keys.ProjectShard(pa.ID), keys.ProjectShard(pb.ID), "a and b must be in different shards")
	}
	key := w.user(t, metering.UserSpec{Username: "u", Project: "a", InitialCredits: cr(10)})
	return w, key
}

func (w *world) moveTo(t *testing.T, project string) {
	t.Helper()
	_, err := w.Engine.PatchUser(w.ctx, "admin", "u", metering.UserPatch{SetProject: true, Project: project})
	require.NoError(t, err)
}

// moveScenario moves u between projects and out of any, charging through
// two gateways (engines) between the moves, the second one's cache
// warmed before each move; it returns the ledger's balances and event
// sums once everything is recorded.
func moveScenario(t *testing.T, shards int) string {
	w, key := moveWorld(t, shards)
	other := w.NewEngine(t)
	charge := func(e *metering.Engine, cost metering.Credits) {
		t.Helper()
		res, err := e.Charge(w.ctx, key, cost, "GET /test")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	charge(w.Engine, cr(2))
	charge(other, cr(1))
	w.moveTo(t, "b")
	charge(w.Engine, cr(4)) // the new allowance, then awarded
	charge(other, cr(1))    // through an entry cached before the move
	w.Clock.Advance(time.Hour)
	w.moveTo(t, "a") // resumes what it left in a this period
	charge(other, cr(1))
	charge(w.Engine, cr(2))
	w.moveTo(t, "")
	charge(other, cr(1))
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	n, err := w.Engine.PendingMovesForTest(w.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	return w.pgSnapshot(t)
}

// A user moved between projects in different shards ends up exactly as
// one moved between projects of one shard: the same balances, the same
// ledger events; and gateways whose cache still points at the old shard
// find the user in the new one.
func TestMoveAcrossShardsIsAMove(t *testing.T) {
	t.Parallel()
	require.Equal(t, moveScenario(t, 1), moveScenario(t, 4))
}

// A move to another shard waits for the requests in flight, as a delete
// does: their settlements need the user's hash where it is.
func TestMoveAcrossShardsWaitsForRequestsInFlight(t *testing.T) {
	t.Parallel()
	w, key := moveWorld(t, 4)
	r := w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(1)), Lease: time.Minute})
	require.Equal(t, metering.Reserved, r.Status)
	_, err := w.Engine.PatchUser(w.ctx, "admin", "u", metering.UserPatch{SetProject: true, Project: "b"})
	require.ErrorIs(t, err, metering.ErrConflict)
	require.Equal(t, "a", w.view(t, "u").ProjectName)
	w.settle(t, r, metering.Outcome{Refund: true})
	w.moveTo(t, "b")
	require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
	w.drainAndCheck(t)
}

// A gateway that stopped in the middle of a move (after the hash was
// copied to the new shard, before the patch and Postgres's commit) leaves
// it pending: the sweeper undoes it once it is older than the grace, and
// the user is charged in its old project as before. One whose commit
// happened is finished instead.
func TestMoveCutShortIsUndoneOrFinished(t *testing.T) {
	t.Parallel()
	t.Run("never committed: undone", func(t *testing.T) {
		t.Parallel()
		w, key := moveWorld(t, 4)
		require.Equal(t, metering.Charged, w.charge(t, key, cr(2)).Status)
		before := w.view(t, "u").Live
		_, _, err := w.Engine.MoveOutOnlyForTest(w.ctx, "u", "b")
		require.NoError(t, err)
		res, err := w.Engine.Charge(w.ctx, key, cr(1), "GET /test")
		require.ErrorIs(t, err, metering.ErrUnavailable, "the user is moving: %+v", res)

		w.sweepAfter(t, 2*time.Minute)
		require.Equal(t, "a", w.view(t, "u").ProjectName)
		require.Equal(t, before, w.view(t, "u").Live)
		require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
		w.drainAndCheck(t)
	})
	t.Run("committed: finished", func(t *testing.T) {
		t.Parallel()
		w, key := moveWorld(t, 4)
		require.Equal(t, metering.Charged, w.charge(t, key, cr(2)).Status)
		_, version, err := w.Engine.MoveOutOnlyForTest(w.ctx, "u", "b")
		require.NoError(t, err)
		// The patch's transaction committed; the gateway died before
		// running patch_user.lua in the new shard.
		_, err = w.DB.Exec(w.ctx, `UPDATE users SET project_id = (SELECT id FROM projects WHERE name = 'b'),
			version = $1 WHERE username = 'u'`, version)
		require.NoError(t, err)

		w.sweepAfter(t, 2*time.Minute)
		v := w.view(t, "u")
		require.Equal(t, "b", v.ProjectName)
		require.Equal(t, cr(3), v.Live.Allowance, "b's allowance")
		require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
		w.drainAndCheck(t)
	})
}

// sweepAfter advances the clock and runs a sweeper twice (the second
// run finds nothing more to do).
func (w *world) sweepAfter(t *testing.T, d time.Duration) {
	t.Helper()
	w.Clock.Advance(d)
	sw, err := w.Engine.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund})
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		_, err := sw.RunOnce(w.ctx)
		require.NoError(t, err)
	}
	n, err := w.Engine.PendingMovesForTest(w.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}
