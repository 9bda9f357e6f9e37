package metering_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

func TestInFlightTracking(t *testing.T) {
	t.Parallel()
	clock := meteringtest.NewClock(time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC))
	w := meteringtest.New(t, meteringtest.Options{Clock: clock})
	ctx := context.Background()
	keys := map[string]string{}
	for _, name := range []string{"ann", "bob"} {
		_, key, err := w.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: name, InitialCredits: 1000 * metering.Micro})
		require.NoError(t, err)
		keys[name] = key
	}
	inFlight := func(name string) int64 {
		v, err := w.Engine.GetUser(ctx, name)
		require.NoError(t, err)
		return v.InFlight
	}

	// Many concurrent tracked requests: all counted while held...
	const n = 100
	leases := make(chan metering.Lease, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		for _, name := range []string{"ann", "bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := w.Engine.ChargeTracked(ctx, keys[name], metering.Micro, "POST /x", time.Minute)
				if err == nil && res.Status == metering.Charged {
					leases <- res.Lease
				}
			}()
		}
	}
	wg.Wait()
	close(leases)
	require.Len(t, leases, 2*n)
	require.Equal(t, int64(n), inFlight("ann"))
	require.Equal(t, int64(n), inFlight("bob"))

	// ...and all gone once released, concurrently, without waiting.
	for l := range leases {
		wg.Add(1)
		go func() { defer wg.Done(); w.Engine.Release(l) }()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return inFlight("ann") == 0 && inFlight("bob") == 0 }, 10*time.Second, 5*time.Millisecond)
	ann, err := w.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)
	size, err := w.Redis.ZCard(ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, ann.ID), ann.ID).InFlight(ann.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, size, "released members are removed, not just expired")

	// Untracked charges are not in flight; a lease whose deadline passed
	// (its gateway died) stops counting.
	_, err = w.Engine.Charge(ctx, keys["ann"], metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Zero(t, inFlight("ann"))
	res, err := w.Engine.ChargeTracked(ctx, keys["ann"], metering.Micro, "POST /x", time.Minute)
	require.NoError(t, err)
	require.True(t, res.Lease.Tracked())
	require.Equal(t, int64(1), inFlight("ann"))
	clock.Advance(time.Minute)
	require.Zero(t, inFlight("ann"))
	require.NoError(t, w.Engine.DeleteUser(ctx, "test", "ann"), "an expired lease does not block deletion")

	// A refused charge leaves no lease.
	res, err = w.Engine.ChargeTracked(ctx, keys["bob"], 5000*metering.Micro, "POST /x", time.Minute)
	require.NoError(t, err)
	require.Equal(t, metering.Insufficient, res.Status)
	require.False(t, res.Lease.Tracked())
	require.Zero(t, inFlight("bob"))
	w.Engine.Release(res.Lease) // a no-op

	w.Drain(t)
	w.AssertConsistent(t)
}
