package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// Redis comes back without its last writes (an OS crash under appendfsync
// everysec) after the reconciler had copied them to the ledger. Before
// anything is written to it, Tollgate notices the restart, heals Redis
// from the ledger, and admits nobody beyond what the ledger says is left:
// lost charges stay charged, lost admin changes (a new user, a
// deactivation, a deletion, a key rotation) stay made.
func TestRedisBackWithoutItsLastWritesIsHealed(t *testing.T) {
	t.Parallel()
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	keys := map[string]string{}
	for _, name := range []string{"ann", "dan", "eve", "fay", "gus", "hal"} {
		_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: name, InitialCredits: 10 * metering.Micro})
		require.NoError(t, err)
		keys[name] = key
		res, err := b.Engine.Charge(ctx, key, metering.Micro, "GET /before") // loads it into Redis
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	// An unknown key makes the gateway sync the key index from Postgres
	// and mark it complete: the crash keeps that mark.
	unknown, err := metering.NewAPIKey()
	require.NoError(t, err)
	res, err := b.Engine.Charge(ctx, unknown, metering.Micro, "GET /unknown")
	require.NoError(t, err)
	require.Equal(t, metering.KeyRefused, res.Status)
	hal, err := b.Engine.ChargeTracked(ctx, keys["hal"], metering.Micro, "GET /in-flight", time.Hour)
	require.NoError(t, err)
	halLease := hal.Lease
	one := metering.Micro
	reservation, err := b.Engine.Reserve(ctx, metering.ReserveRequest{Key: keys["fay"], Fixed: &one, Request: "POST /r", Lease: time.Hour})
	require.NoError(t, err)
	require.Equal(t, metering.Reserved, reservation.Status)
	b.Drain(t)
	snap := b.SnapshotRedis(t) // what survives the crash

	// The last second before the crash, all of it copied to the ledger.
	res, err = b.Engine.Charge(ctx, keys["ann"], 6*metering.Micro, "GET /lost")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	_, catKey, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "cat", InitialCredits: 3 * metering.Micro})
	require.NoError(t, err)
	_, err = b.Engine.SetUserActive(ctx, "test", "dan", false)
	require.NoError(t, err)
	require.NoError(t, b.Engine.DeleteUser(ctx, "test", "eve"))
	_, err = b.Engine.Settle(ctx, reservation, metering.Outcome{Cost: &one, Status: 200})
	require.NoError(t, err)
	fayKey, err := b.Engine.RotateKey(ctx, "test", "fay")
	require.NoError(t, err)
	// hal's request was in flight at the snapshot and released after it:
	// the release is among the lost writes.
	b.Engine.Release(halLease)
	require.Eventually(t, func() bool { return inFlight(t, b, "hal") == 0 }, 30*time.Second, 5*time.Millisecond)
	four := 4 * metering.Micro
	lostHold, err := b.Engine.Reserve(ctx, metering.ReserveRequest{Key: keys["gus"], Fixed: &four, Request: "POST /lost-hold", Lease: time.Hour})
	require.NoError(t, err)
	require.Equal(t, metering.Reserved, lostHold.Status)
	b.Drain(t)

	b.RestartRedisFrom(t, snap)

	// ann has 9 - 6 = 3 left in the ledger: 6 more is refused, 3 is fine.
	res, err = b.Engine.Charge(ctx, keys["ann"], 6*metering.Micro, "GET /again")
	require.NoError(t, err)
	require.Equal(t, metering.Insufficient, res.Status, "admitted beyond what the ledger says is left")
	require.Equal(t, 3*metering.Micro, res.Remaining)
	res, err = b.Engine.Charge(ctx, keys["ann"], 3*metering.Micro, "GET /again")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)

	for name, key := range map[string]string{"dan (deactivated)": keys["dan"], "eve (deleted)": keys["eve"], "fay's old key": keys["fay"]} {
		res, err := b.Engine.Charge(ctx, key, metering.Micro, "GET /refused")
		require.NoError(t, err)
		require.Equal(t, metering.KeyRefused, res.Status, name)
	}
	for name, key := range map[string]string{"cat (created)": catKey, "fay's new key": fayKey} {
		res, err := b.Engine.Charge(ctx, key, metering.Micro, "GET /works")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status, name)
	}

	// gus's reservation was lost with Redis but its hold is in the ledger:
	// it is back, and settles with what the request used.
	settled, err := b.Engine.Settle(ctx, lostHold, metering.Outcome{Cost: &one, Status: 200})
	require.NoError(t, err)
	require.False(t, settled.AlreadySettled, "the lost reservation was not restored: its hold stays charged")
	require.Equal(t, 3*metering.Micro, settled.Refunded)
	v, err := b.Engine.GetUser(ctx, "gus")
	require.NoError(t, err)
	require.Equal(t, 8*metering.Micro, v.Live.Effective)

	leases, err := b.Redis.ZCard(ctx, b.Engine.Keys().Shard(0).Leases()).Result()
	require.NoError(t, err)
	require.Zero(t, leases, "a reservation settled in the ledger came back for the sweeper")
	// The gateway sent its recent releases again.
	require.NoError(t, b.Engine.WaitForRepairs(ctx))
	require.Zero(t, inFlight(t, b, "hal"), "a release lost with Redis left the user in flight")

	b.Drain(t)
	b.AssertConsistent(t)
	epoch, err := b.Redis.Get(ctx, b.Engine.Keys().Shard(0).Epoch()).Result()
	require.NoError(t, err)
	require.NotEmpty(t, epoch, "the healed server is recorded as verified")
}

// A restart that lost nothing costs a verification and changes nothing;
// a reconciler meeting the unverified server verifies it too.
func TestRedisRestartWithoutLossIsVerified(t *testing.T) {
	t.Parallel()
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)
	_, err = b.Engine.Charge(ctx, key, 2*metering.Micro, "GET /x")
	require.NoError(t, err)
	b.RestartRedisFrom(t, b.SnapshotRedis(t)) // unreconciled event included

	r, err := b.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "after-restart", Block: 10 * time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := r.RunOnce(ctx)
		return err == nil && n > 0
	}, 30*time.Second, 10*time.Millisecond, "the reconciler did not resume after verifying")
	v, err := b.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, 8*metering.Micro, v.Live.Effective)
	b.Drain(t)
	b.AssertConsistent(t)
}

func inFlight(t *testing.T, b *meteringtest.Bundle, name string) int64 {
	v, err := b.Engine.GetUser(context.Background(), name)
	require.NoError(t, err)
	return v.InFlight
}
