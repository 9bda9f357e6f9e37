package metering_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// hammer runs n concurrent charges of cost with key, spread round-robin over
// engines, all released at once, and returns every result.
func hammer(t *testing.T, engines []*metering.Engine, key string, n int, cost metering.Credits) []metering.ChargeResult {
	t.Helper()
	return hammerKeys(t, engines, []string{key}, n, cost)
}

// hammerKeys is hammer with charge i using keys[i%len(keys)].
func hammerKeys(t *testing.T, engines []*metering.Engine, keys []string, n int, cost metering.Credits) []metering.ChargeResult {
	t.Helper()
	results := make([]metering.ChargeResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i], errs[i] = engines[i%len(engines)].Charge(context.Background(), keys[i%len(keys)], cost, "POST /v1/chat/completions")
		}(i)
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "charge %d", i)
	}
	return results
}

// watchNegative samples the given Redis hashes until stop is closed and
// reports any balance field seen below zero.
func watchNegative(w *world, hashes []string) (stop func() []string) {
	done := make(chan struct{})
	var seen []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, h := range hashes {
				vals, err := w.Redis.HMGet(context.Background(), h, "a", "pu", "aw", "pr", "pb").Result()
				if err != nil {
					seen = append(seen, fmt.Sprintf("%s: %v", h, err))
					continue
				}
				for i, v := range vals {
					if s, ok := v.(string); ok && len(s) > 0 && s[0] == '-' {
						seen = append(seen, fmt.Sprintf("%s field %d = %s", h, i, s))
					}
				}
			}
		}
	}()
	return func() []string {
		close(done)
		wg.Wait()
		return seen
	}
}

type tally struct {
	charged, insufficient int
	taken                 metering.Split
	remaining             []int64 // Remaining after each successful charge
}

func count(t *testing.T, results []metering.ChargeResult) tally {
	t.Helper()
	var out tally
	for _, r := range results {
		switch r.Status {
		case metering.Charged:
			out.charged++
			out.taken.Allowance += r.Taken.Allowance
			out.taken.Pool += r.Taken.Pool
			out.taken.Awarded += r.Taken.Awarded
			out.taken.Purchased += r.Taken.Purchased
			out.remaining = append(out.remaining, int64(r.Remaining))
		case metering.Insufficient:
			out.insufficient++
			require.Equal(t, metering.Credits(0), r.Remaining, "an integer-credit balance refuses 1 credit only at 0")
		default:
			t.Fatalf("unexpected status %v", r.Status)
		}
	}
	sort.Slice(out.remaining, func(i, j int) bool { return out.remaining[i] < out.remaining[j] })
	return out
}

// requireSerial checks that the successful charges saw every balance from
// total-1 down to 0 exactly once: they were serialized, none lost.
func requireSerial(t *testing.T, tl tally, total int) {
	t.Helper()
	require.Len(t, tl.remaining, total)
	for i, r := range tl.remaining {
		require.Equal(t, int64(cr(int64(i))), r, "remaining balances must be distinct and complete")
	}
}

func TestConcurrentChargesNeverOverdraw(t *testing.T) {
	t.Parallel()
	const goroutines, balance = 500, 200
	cases := []struct {
		name    string
		project *metering.ProjectSpec
		user    metering.UserSpec
		split   metering.Split
		engines int
	}{
		{name: "purchased only", user: metering.UserSpec{Username: "u", Purchased: cr(balance)},
			split: metering.Split{Purchased: cr(balance)}, engines: 1},
		{name: "awarded only, two gateways", user: metering.UserSpec{Username: "u", InitialCredits: cr(balance)},
			split: metering.Split{Awarded: cr(balance)}, engines: 2},
		{name: "spread over four buckets",
			project: &metering.ProjectSpec{Name: "p", AllowanceAmount: cr(50), Period: metering.PeriodDaily,
				TimeZone: "Europe/Berlin", PoolEnabled: true, PoolBalance: cr(50)},
			user:  metering.UserSpec{Username: "u", Project: "p", InitialCredits: cr(50), Purchased: cr(50)},
			split: metering.Split{Allowance: cr(50), Pool: cr(50), Awarded: cr(50), Purchased: cr(50)}, engines: 1},
		{name: "spread over four buckets, two gateways",
			project: &metering.ProjectSpec{Name: "p", AllowanceAmount: cr(50), Period: metering.PeriodWeekly,
				TimeZone: "Pacific/Auckland", PoolEnabled: true, PoolBalance: cr(80), PoolPerUserLimit: ptr(cr(50))},
			user:  metering.UserSpec{Username: "u", Project: "p", InitialCredits: cr(50), Purchased: cr(50)},
			split: metering.Split{Allowance: cr(50), Pool: cr(50), Awarded: cr(50), Purchased: cr(50)}, engines: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, monday)
			var projectID int64
			if c.project != nil {
				projectID = w.project(t, *c.project).ID
			}
			key := w.user(t, c.user)
			uid := w.view(t, "u").ID
			engines := []*metering.Engine{w.Engine}
			for len(engines) < c.engines {
				engines = append(engines, w.NewEngine(t))
			}
			hashes := []string{w.Engine.Keys().ShardOf(userProject(t, w.DB, uid), uid).User(uid)}
			if projectID != 0 {
				hashes = append(hashes, w.Engine.Keys().ProjectShard(projectID).Project(projectID))
			}
			stop := watchNegative(w, hashes)
			tl := count(t, hammer(t, engines, key, goroutines, cr(1)))
			require.Empty(t, stop(), "no balance may go below zero, even for a moment")

			require.Equal(t, balance, tl.charged)
			require.Equal(t, goroutines-balance, tl.insufficient)
			require.Equal(t, c.split, tl.taken)
			requireSerial(t, tl, balance)
			raw := w.redisUser(t, uid)
			for _, f := range []string{"a", "aw", "pr", "pu"} {
				require.GreaterOrEqual(t, raw[f], int64(0), f)
			}
			require.Equal(t, metering.Credits(0), w.view(t, "u").Live.Effective)

			w.drainAndCheck(t)
			l := w.ledgerUsage(t, uid)
			require.Equal(t, int64(balance), l.events, "one usage event per successful charge")
			require.Equal(t, int64(cr(balance)), l.cost)
			require.Equal(t, -int64(cr(balance)), l.t, "bucket deltas of the usage events")
			require.Equal(t, ledgerUsage{events: balance, cost: int64(cr(balance)), a: -int64(c.split.Allowance),
				pl: -int64(c.split.Pool), aw: -int64(c.split.Awarded), pr: -int64(c.split.Purchased), t: -int64(cr(balance))}, l)
			require.Equal(t, int64(0), w.pgInt(t, `SELECT allowance_remaining + awarded + purchased FROM users WHERE id = $1`, uid))
			require.Equal(t, int64(c.split.Pool), w.pgInt(t, `SELECT pool_used FROM users WHERE id = $1`, uid))
			if c.project != nil {
				require.Equal(t, int64(1), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'refill'`))
				require.Equal(t, int64(c.project.PoolBalance-c.split.Pool),
					w.pgInt(t, `SELECT pool_balance FROM projects WHERE id = $1`, projectID))
			}
		})
	}
}

// TestConcurrentUsersShareCappedPool: five users with nothing but a pool of
// 100 capped at 30 each race for it; the pool pays exactly 100 and nobody
// more than 30.
func TestConcurrentUsersShareCappedPool(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	p := w.project(t, metering.ProjectSpec{Name: "p", Period: metering.PeriodDaily, PoolEnabled: true,
		PoolBalance: cr(100), PoolPerUserLimit: ptr(cr(30))})
	const users = 5
	keys := make([]string, users)
	for i := range keys {
		keys[i] = w.user(t, metering.UserSpec{Username: fmt.Sprintf("u%d", i), Project: "p"})
	}
	second := w.NewEngine(t)
	stop := watchNegative(w, []string{w.Engine.Keys().ProjectShard(p.ID).Project(p.ID)})
	per := make([]tally, users)
	for i, r := range hammerKeys(t, []*metering.Engine{w.Engine, second}, keys, 100*users, cr(1)) {
		if r.Status == metering.Charged {
			per[i%users].charged++
		}
	}
	require.Empty(t, stop())
	total := 0
	for i, tl := range per {
		require.LessOrEqual(t, tl.charged, 30, "user %d drew more than the per-user limit", i)
		total += tl.charged
	}
	require.Equal(t, 100, total)
	w.drainAndCheck(t)
	require.Equal(t, int64(0), w.pgInt(t, `SELECT pool_balance FROM projects WHERE id = $1`, p.ID))
	require.Equal(t, int64(cr(100)), w.pgInt(t, `SELECT coalesce(sum(pool_used), 0) FROM users`))
	require.Equal(t, -int64(cr(100)), w.pgInt(t, `SELECT coalesce(sum(d_pool), 0) FROM events WHERE kind = 'usage'`))
}

// TestConcurrentChargesAtPeriodBoundaryRefillOnce: hundreds of charges
// arriving just after a local period boundary, through two gateways, refill
// the allowance exactly once.
func TestConcurrentChargesAtPeriodBoundaryRefillOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, utc(2026, 1, 15, 12, 0, 0))
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(100), Period: metering.PeriodDaily, TimeZone: "Europe/Berlin"})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p"})
	uid := w.view(t, "u").ID
	engines := []*metering.Engine{w.Engine, w.NewEngine(t)}
	tl := count(t, hammer(t, engines, key, 150, cr(1)))
	require.Equal(t, 100, tl.charged)
	requireSerial(t, tl, 100)

	w.Clock.Set(utc(2026, 1, 15, 23, 0, 0).Add(time.Millisecond)) // just after midnight in Berlin
	tl = count(t, hammer(t, engines, key, 300, cr(1)))
	require.Equal(t, 100, tl.charged, "one fresh allowance, not one per gateway or per charge")
	requireSerial(t, tl, 100)
	require.Equal(t, utc(2026, 1, 15, 23, 0, 0).Unix(), w.redisUser(t, uid)["ap"])

	w.drainAndCheck(t)
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'refill'`))
	require.Equal(t, int64(200), w.ledgerUsage(t, uid).events)
}

// TestConcurrentChargesDuringReconcile: a reconciler running in the
// background while charges pour in neither loses nor doubles an event.
func TestConcurrentChargesDuringReconcile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(300)})
	uid := w.view(t, "u").ID
	r, err := w.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "bg", BatchSize: 7, Block: 5 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	var charged atomic.Int64
	engines := []*metering.Engine{w.Engine, w.NewEngine(t)}
	for round := 0; round < 4; round++ {
		tl := count(t, hammer(t, engines, key, 100, cr(1)))
		charged.Add(int64(tl.charged))
	}
	require.Equal(t, int64(300), charged.Load())
	require.Eventually(t, func() bool {
		n, err := w.Redis.XLen(w.ctx, w.Engine.Keys().Shard(0).Events()).Result()
		return err == nil && n == 0
	}, 20*time.Second, 10*time.Millisecond, "the background reconciler drains the stream")
	r.Stop()
	w.drainAndCheck(t)
	require.Equal(t, int64(300), w.ledgerUsage(t, uid).events)
	require.Equal(t, int64(0), w.pgInt(t, `SELECT purchased FROM users WHERE id = $1`, uid))
}

// TestChargesSurviveScriptCacheFlush: Redis losing its script cache (a
// restart, a failover, SCRIPT FLUSH) while charges are in flight neither
// fails them nor runs any twice: the runner resends only the calls that
// answered NOSCRIPT.
func TestChargesSurviveScriptCacheFlush(t *testing.T) {
	t.Parallel()
	// A server of its own: SCRIPT FLUSH empties a whole server's cache.
	srv := meteringtest.StartRedisServer(t)
	w := &world{Bundle: meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(monday),
		RedisURL: "redis://" + srv.Addr() + "/0"}), ctx: context.Background()}
	key := w.user(t, metering.UserSpec{Username: "u", InitialCredits: cr(300)})
	uid := w.view(t, "u").ID
	engines := []*metering.Engine{w.Engine, w.NewEngine(t)}
	stop := make(chan struct{})
	flushed := make(chan int)
	go func() {
		n := 0
		defer func() { flushed <- n }()
		for n < 20 {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if w.Redis.ScriptFlush(context.Background()).Err() == nil {
				n++
			}
		}
	}()
	var tl tally
	for round := 0; round < 4; round++ {
		r := count(t, hammer(t, engines, key, 100, cr(1)))
		tl.charged += r.charged
		tl.remaining = append(tl.remaining, r.remaining...)
	}
	close(stop)
	require.Greater(t, <-flushed, 0, "the script cache was flushed during the test")
	require.Equal(t, 300, tl.charged)
	sort.Slice(tl.remaining, func(i, j int) bool { return tl.remaining[i] < tl.remaining[j] })
	requireSerial(t, tl, 300)
	w.drainAndCheck(t)
	require.Equal(t, int64(300), w.ledgerUsage(t, uid).events, "no charge ran twice or went unrecorded")
}
