package metering_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestSweeperSettlesExpiredLeases(t *testing.T) {
	t.Parallel()
	for _, policy := range []metering.SweepPolicy{metering.SweepCharge, metering.SweepRefund} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			w, key := reserveWorld(t)
			var rs []*metering.Reservation
			for i := 0; i < 5; i++ {
				lease := time.Minute
				if i == 4 {
					lease = time.Hour // still alive when the sweeper runs
				}
				rs = append(rs, w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(2)), Lease: lease}))
			}
			sw, err := w.Engine.NewSweeper(metering.SweeperConfig{Policy: policy, Batch: 2})
			require.NoError(t, err)
			n, err := sw.RunOnce(w.ctx)
			require.NoError(t, err)
			require.Zero(t, n, "no lease has run out yet")

			w.Clock.Advance(2 * time.Minute)
			n, err = sw.RunOnce(w.ctx)
			require.NoError(t, err)
			require.Equal(t, 4, n, "every expired lease, over several batches")
			n, err = sw.RunOnce(w.ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			again := w.settle(t, rs[0], metering.Outcome{Refund: true})
			require.True(t, again.AlreadySettled, "the gateway's late settle is a no-op")

			want := cr(40) - cr(10) // four swept and charged, one still held
			if policy == metering.SweepRefund {
				want = cr(40) - cr(2)
			}
			require.Equal(t, want, w.view(t, "u").Live.Effective)
			w.settle(t, rs[4], metering.Outcome{Cost: ptr(cr(2))})
			w.drainAndCheck(t)
			require.Empty(t, w.rollupMismatches(t))
			wantCharged := int64(cr(10))
			if policy == metering.SweepRefund {
				wantCharged = int64(cr(2))
			}
			require.Equal(t, wantCharged, w.pgInt(t, `SELECT sum(cost) FROM events WHERE kind = 'usage'`))
			require.Equal(t, int64(4), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage' AND upstream_status IS NULL AND note LIKE 'lease expired%'`))
		})
	}
}

func TestOneSweeperAtATime(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	for i := 0; i < 20; i++ {
		w.reserve(t, metering.ReserveRequest{Key: key, Fixed: ptr(cr(1)), Lease: time.Minute})
	}
	w.Clock.Advance(time.Hour)
	a, err := w.Engine.NewSweeper(metering.SweeperConfig{Batch: 3})
	require.NoError(t, err)
	b, err := w.NewEngine(t).NewSweeper(metering.SweeperConfig{Batch: 3})
	require.NoError(t, err)

	// While another session holds this deployment's sweeper lock, a sweep
	// does nothing at all.
	conn, err := w.DB.Acquire(w.ctx)
	require.NoError(t, err)
	var got bool
	require.NoError(t, conn.QueryRow(w.ctx, `SELECT pg_try_advisory_lock($1)`, a.LockKey()).Scan(&got))
	require.True(t, got)
	n, err := b.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = conn.Exec(w.ctx, `SELECT pg_advisory_unlock($1)`, a.LockKey())
	require.NoError(t, err)
	conn.Release()

	// Two sweepers racing: each reservation is settled exactly once.
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, s := range []*metering.Sweeper{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				n, err := s.RunOnce(context.Background())
				require.NoError(t, err)
				counts[i] += n
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 20, counts[0]+counts[1])
	w.drainAndCheck(t)
	require.Equal(t, int64(20), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))

	// Start and Stop are idempotent; a started sweeper stops cleanly.
	require.NoError(t, a.Start(w.ctx))
	require.NoError(t, a.Start(w.ctx))
	a.Stop()
	a.Stop()
	_, err = w.Engine.NewSweeper(metering.SweeperConfig{Policy: "later"})
	require.Error(t, err)
}

// TestConcurrentReserveSettle: 200 requests reserve and settle at once
// (two gateways) against buckets that cover only some; actual costs are
// below, at and above the estimate. Nothing goes below zero, and what the
// settlements say they charged is exactly what left the buckets, in Redis
// and in the ledger.
func TestConcurrentReserveSettle(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t) // 40 credits reachable: allowance 10, pool 10, awarded 10, purchased 10
	uid := w.view(t, "u").ID
	stop := watchNegative(w, []string{w.Engine.Keys().ShardOf(userProject(t, w.DB, uid), uid).User(uid), w.Engine.Keys().ProjectShard(w.view(t, "u").ProjectID).Project(w.view(t, "u").ProjectID)})
	engines := []*metering.Engine{w.Engine, w.NewEngine(t)}
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reserved, refused int
	var charged, shortfall metering.Credits
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e := engines[i%2]
			r, err := e.Reserve(context.Background(), metering.ReserveRequest{Key: key, Model: "m1",
				Estimate: tokens(500_000, 0), Request: "POST /v1/chat/completions"}) // 0.5 credits
			if !assert(t, err == nil, "reserve: %v", err) {
				return
			}
			if r.Status != metering.Reserved {
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			// Actual: 0 to 1 credit in quarter steps.
			s, err := e.Settle(context.Background(), r, metering.Outcome{Units: tokens(int64(i%5)*250_000, 0), Status: 200})
			if !assert(t, err == nil, "settle: %v", err) {
				return
			}
			mu.Lock()
			reserved++
			charged += s.Charged
			shortfall += s.Shortfall
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	require.Empty(t, stop(), "no balance may go below zero, even for a moment")
	require.Equal(t, n, reserved+refused)
	require.Greater(t, refused, 0, "the balance covers only some")
	eff := w.view(t, "u").Live.Effective
	require.Equal(t, cr(40)-charged, eff, "what settlements charged left the buckets, no more")
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	require.Equal(t, int64(charged), w.pgInt(t, `SELECT sum(cost) FROM events WHERE kind = 'usage' AND user_id = $1`, uid))
	require.Equal(t, int64(shortfall), w.pgInt(t, `SELECT coalesce(sum(shortfall), 0) FROM events WHERE kind = 'usage'`))
	require.Equal(t, -int64(charged), w.pgInt(t, `SELECT sum(d_allowance + d_pool + d_awarded + d_purchased) FROM events
		WHERE kind IN ('usage', 'hold') AND user_id = $1`, uid), "holds and settlements net to the charges")
	require.Equal(t, int64(reserved), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
}

// assert is require for goroutines: it reports and returns ok.
func assert(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}
