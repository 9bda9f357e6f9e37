package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// shardedWorld is a world whose keys are in four shards, with users
// ann and bob (no project) in different ones.
func shardedWorld(t *testing.T) *world {
	t.Helper()
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(monday), RedisShards: 4})
	w := &world{Bundle: b, ctx: context.Background()}
	w.user(t, metering.UserSpec{Username: "ann", InitialCredits: cr(10)})
	w.user(t, metering.UserSpec{Username: "bob", InitialCredits: cr(5)})
	keys := w.Engine.Keys()
	require.NotEqual(t, keys.ShardOf(0, w.view(t, "ann").ID).Index(), keys.ShardOf(0, w.view(t, "bob").ID).Index(),
		"ann and bob must be in different shards for these tests")
	return w
}

func (w *world) pendingTransfers(t *testing.T) int64 {
	t.Helper()
	n, err := w.Engine.PendingTransfersForTest(w.ctx)
	require.NoError(t, err)
	return n
}

// A transfer between shards moves the credits once, records both events
// and both audit entries, and leaves nothing pending; one the source
// cannot pay changes nothing.
func TestTransferAcrossShards(t *testing.T) {
	t.Parallel()
	w := shardedWorld(t)
	a, b, err := w.Engine.Transfer(w.ctx, "admin", "ann", "bob", cr(3), "lunch")
	require.NoError(t, err)
	require.Equal(t, cr(7), a.Awarded)
	require.Equal(t, cr(8), b.Awarded)
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'transfer'`))
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM audit_log WHERE action LIKE 'transfer.%'`))
	require.Zero(t, w.pendingTransfers(t))

	_, _, err = w.Engine.Transfer(w.ctx, "admin", "bob", "ann", cr(9), "")
	require.ErrorIs(t, err, metering.ErrInsufficient)
	require.Equal(t, cr(7), w.view(t, "ann").Awarded)
	require.Equal(t, cr(8), w.view(t, "bob").Awarded)
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'transfer'`))
	require.Zero(t, w.pendingTransfers(t))
	w.drainAndCheck(t)
}

// A credit the destination cannot take (past the bound) gives the source
// its credits back, under an event of its own.
func TestTransferAcrossShardsGivesBackWhatTheDestinationRefuses(t *testing.T) {
	t.Parallel()
	w := shardedWorld(t)
	_, err := w.Engine.AdjustCredits(w.ctx, "admin", "bob", metering.BucketAwarded, metering.MaxCredits-cr(5)-1, "to the brim")
	require.NoError(t, err)
	_, _, err = w.Engine.Transfer(w.ctx, "admin", "ann", "bob", cr(3), "")
	var bad *metering.InvalidError
	require.ErrorAs(t, err, &bad)
	require.Equal(t, cr(10), w.view(t, "ann").Awarded)
	require.Equal(t, int64(0), w.pgInt(t, `SELECT coalesce(sum(d_awarded), 0) FROM events WHERE kind = 'transfer'`))
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'transfer'`), "the debit and its return")
	require.Zero(t, w.pendingTransfers(t))
	w.drainAndCheck(t)
}

// A gateway that stopped after the debit leaves the transfer pending:
// the user cannot be deleted meanwhile, and the sweeper finishes it once
// it is older than the grace, exactly once, even when Redis lost the
// debit's marker after its event reached the ledger.
func TestTransferCutShortIsFinishedOnce(t *testing.T) {
	t.Parallel()
	w := shardedWorld(t)
	outID, err := w.Engine.DebitOnlyForTest(w.ctx, "ann", "bob", cr(4))
	require.NoError(t, err)
	require.Equal(t, cr(6), w.view(t, "ann").Live.Awarded, "debited")
	require.Equal(t, cr(5), w.view(t, "bob").Live.Awarded, "not yet credited")
	require.ErrorIs(t, w.Engine.DeleteUser(w.ctx, "admin", "bob"), metering.ErrConflict)

	sw, err := w.Engine.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund})
	require.NoError(t, err)
	_, err = sw.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), w.pendingTransfers(t), "within the grace the transfer is its gateway's")

	// The debit's event reaches the ledger; then Redis forgets its marker
	// (a failover to a replica that never had it).
	w.Drain(t)
	keys := w.Engine.Keys()
	require.NoError(t, w.Redis.Del(w.ctx, keys.ShardOf(0, w.view(t, "ann").ID).Reservation(outID)).Err())

	w.Clock.Advance(2 * time.Minute)
	_, err = sw.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Zero(t, w.pendingTransfers(t))
	require.Equal(t, cr(6), w.view(t, "ann").Awarded, "debited once")
	require.Equal(t, cr(9), w.view(t, "bob").Awarded, "credited once")
	_, err = sw.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, cr(9), w.view(t, "bob").Awarded)
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'transfer'`))
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM audit_log WHERE action LIKE 'transfer.%'`))
	w.drainAndCheck(t)
	require.NoError(t, w.Engine.DeleteUser(w.ctx, "admin", "bob"), "nothing pending any more")
}
