package metering_test

// The Reconciler's and the Sweeper's shared lifecycle (background.go), seen
// through each: Stop before Start, concurrent Stops that all wait for the
// loop, and a Start after Stop that works again.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// stopConcurrently calls stop from several goroutines at once and reports
// whether the loop still ran when any of them returned.
func stopConcurrently(stop func(), running func() bool) (ranAfterAStop bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop()
			if running() {
				mu.Lock()
				ranAfterAStop = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ranAfterAStop
}

func TestReconcilerRestarts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(100)})
	r, err := w.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "bg", Block: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	r.Stop() // before Start: a no-op
	require.False(t, r.Running())

	for round := int64(1); round <= 3; round++ {
		require.NoError(t, r.Start(context.Background()))
		require.NoError(t, r.Start(context.Background()), "starting a running reconciler does nothing")
		require.True(t, r.Running())
		require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
		require.Eventually(t, func() bool {
			return w.tryInt(`SELECT count(*) FROM events WHERE kind = 'usage'`) == round && w.tryStreamLen() == 0
		}, 10*time.Second, 10*time.Millisecond, "round %d: the (re)started loop reconciles", round)
		require.False(t, stopConcurrently(r.Stop, r.Running), "round %d: a Stop returned while the loop ran", round)
		r.Stop() // idempotent
	}
	w.drainAndCheck(t)
}

func TestSweeperRestarts(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	sw, err := w.Engine.NewSweeper(metering.SweeperConfig{Policy: metering.SweepRefund, Interval: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(sw.Stop)
	sw.Stop() // before Start: a no-op
	require.False(t, sw.Running())
	leases := func() int64 {
		return w.shardsSum(func(sh *metering.ShardKeys) *redis.IntCmd { return w.Redis.ZCard(w.ctx, sh.Leases()) })
	}

	// The sweep runs in the (re)started loop: a lease that ran out is
	// settled. The third round starts with a context that then ends: the
	// loop stops with it, and a fourth Start runs it again.
	for round := 1; round <= 4; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, sw.Start(ctx))
		require.NoError(t, sw.Start(ctx), "starting a running sweeper does nothing")
		require.True(t, sw.Running())
		if round == 3 {
			cancel()
			require.Eventually(t, func() bool { return !sw.Running() }, 10*time.Second, time.Millisecond,
				"the loop ends with its context")
			continue
		}
		w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(2)), Lease: time.Minute})
		require.Equal(t, int64(1), leases())
		w.Clock.Advance(2 * time.Minute)
		require.Eventually(t, func() bool { return leases() == 0 }, 10*time.Second, 10*time.Millisecond,
			"round %d: the (re)started loop sweeps", round)
		require.False(t, stopConcurrently(sw.Stop, sw.Running), "round %d: a Stop returned while the loop ran", round)
		sw.Stop() // idempotent
		cancel()
	}
	require.Equal(t, cr(40), w.view(t, "u").Live.Effective, "every swept reservation refunded")
	w.drainAndCheck(t)
}
