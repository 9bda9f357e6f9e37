package metering_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// leaseWorld is a world whose engines take credit leases with a short
// heartbeat (so a test that waits for a dead gateway waits a second).
func leaseWorld(t *testing.T) *world {
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(monday),
		// Flushes only when a batch is full or a lease ends, so what is
		// pending is the test's to say; idle leases are not ended behind
		// its back.
		Leases: metering.LeaseConfig{Heartbeat: time.Second, Idle: time.Hour, Flush: time.Hour}})
	return &world{Bundle: b, ctx: context.Background()}
}

// gateways starts n engines' lease loops and waits until each admits from
// memory (its first heartbeat).
func (w *world) gateways(t *testing.T, n int) []*metering.Engine {
	t.Helper()
	es := []*metering.Engine{w.Engine}
	for len(es) < n {
		es = append(es, w.NewEngine(t))
	}
	for _, e := range es {
		e.StartLeases()
		require.Eventually(t, e.LeaseAliveForTest, 30*time.Second, 10*time.Millisecond, "first heartbeat")
	}
	return es
}

func (w *world) chargeLeased(t *testing.T, e *metering.Engine, key string, cost metering.Credits) metering.ChargeResult {
	t.Helper()
	res, err := e.ChargeLeased(w.ctx, key, cost, "GET /test")
	require.NoError(t, err)
	return res
}

// Many requests on three gateways race for one balance: exactly as many
// are admitted as the balance pays, never one more, and once every lease
// is back nothing is left over or lost.
func TestLeasedChargesAreExactAcrossGateways(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", InitialCredits: cr(3), Purchased: cr(7)})
	gws := w.gateways(t, 3)
	const cost = metering.Credits(1000) // 10 credits pay exactly 10,000
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(e *metering.Engine) {
			defer wg.Done()
			for {
				res, err := e.ChargeLeased(w.ctx, key, cost, "GET /test")
				if err != nil {
					t.Error(err)
					return
				}
				if res.Status != metering.Charged {
					require.Equal(t, metering.Insufficient, res.Status)
					return
				}
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}(gws[i%3])
	}
	wg.Wait()
	// A refusal may come while another gateway's lease holds credits: once
	// they are back, they pay the rest, one gateway at a time.
	for _, e := range gws {
		e.EndLeases(w.ctx)
	}
	for w.chargeLeased(t, gws[0], key, cost).Status == metering.Charged {
		admitted++
	}
	gws[0].EndLeases(w.ctx)
	require.Equal(t, 10000, admitted)
	v := w.view(t, "u")
	require.Equal(t, metering.Credits(0), v.Live.Effective)
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	require.Equal(t, int64(10000), w.pgInt(t, `SELECT coalesce(sum(requests), 0) FROM usage_daily WHERE user_id = $1`, v.ID))
	require.Equal(t, int64(cr(10)), w.pgInt(t, `SELECT coalesce(sum(credits), 0) FROM usage_daily WHERE user_id = $1`, v.ID))
	require.Equal(t, int64(cr(3)), w.pgInt(t, `SELECT coalesce(sum(awarded), 0) FROM usage_daily WHERE user_id = $1`, v.ID))
	require.Equal(t, int64(cr(7)), w.pgInt(t, `SELECT coalesce(sum(purchased), 0) FROM usage_daily WHERE user_id = $1`, v.ID))
}

// A lease serves its user's next requests without Redis: the usage events
// appear with the lease's flush, and the stored balance already has the
// lease taken out.
func TestLeaseAdmitsFromMemory(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", InitialCredits: cr(100)})
	e := w.gateways(t, 1)[0]
	first := w.chargeLeased(t, e, key, cr(1))
	require.Equal(t, metering.Charged, first.Status)
	require.Equal(t, cr(99), first.Remaining)
	require.Equal(t, metering.Split{Awarded: cr(1)}, first.Taken)
	// The first request's credit and a quarter of the 100 credits went
	// into the lease: Redis holds the rest.
	require.Equal(t, int64(cr(74)), w.redisUser(t, first.UserID)["aw"])
	for i := 2; i <= 26; i++ {
		res := w.chargeLeased(t, e, key, cr(1))
		require.Equal(t, metering.Charged, res.Status)
		require.Equal(t, cr(100-int64(i)), res.Remaining)
	}
	require.Equal(t, int64(cr(74)), w.redisUser(t, first.UserID)["aw"], "admitted from memory")
	// The 27th cannot be paid by the lease: it ends and a new one is taken.
	res := w.chargeLeased(t, e, key, cr(1))
	require.Equal(t, cr(73), res.Remaining)
	e.EndLeases(w.ctx)
	require.Equal(t, int64(cr(73)), w.redisUser(t, first.UserID)["aw"])
	w.drainAndCheck(t)
	require.Equal(t, int64(27), w.pgInt(t, `SELECT coalesce(sum(requests), 0) FROM usage_daily WHERE user_id = $1`, first.UserID))
}

// Deactivation on one gateway's admin API reaches all three gateways
// before it returns: the next request is refused everywhere, and what the
// leases held is back in Redis.
func TestRecallReachesEveryGatewayBeforeTheAdminCallReturns(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(90)})
	gws := w.gateways(t, 3)
	for _, e := range gws {
		require.Equal(t, metering.Charged, w.chargeLeased(t, e, key, cr(1)).Status)
	}
	_, err := gws[1].SetUserActive(w.ctx, "test", "u", false)
	require.NoError(t, err)
	for i, e := range gws {
		require.Equal(t, metering.KeyRefused, w.chargeLeased(t, e, key, cr(1)).Status, "gateway %d", i)
	}
	v := w.view(t, "u")
	require.Equal(t, int64(cr(87)), w.redisUser(t, v.ID)["pr"], "the leases went back")
	w.drainAndCheck(t)
}

// A removal of credits sees what leases held: they are recalled first.
func TestNegativeAdjustmentRecallsLeases(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", InitialCredits: cr(40)})
	gws := w.gateways(t, 3)
	for _, e := range gws {
		require.Equal(t, metering.Charged, w.chargeLeased(t, e, key, cr(1)).Status)
	}
	_, err := w.Engine.AdjustCredits(w.ctx, "test", "u", metering.BucketAwarded, -cr(37), "all of it")
	require.NoError(t, err)
	for i, e := range gws {
		require.Equal(t, metering.Insufficient, w.chargeLeased(t, e, key, 1).Status, "gateway %d", i)
	}
	w.drainAndCheck(t)
}

// A gateway that dies holding a lease: the recall waits for its heartbeat
// to run out, not longer, and the dead gateway (had it only lost Redis)
// admits nothing from memory after that. The sweeper ends its lease with
// the use its last flush recorded: the user gets back the rest, including
// what the gateway admitted after that flush (at most one lease).
func TestDeadGatewayLeaseIsSweptWithinItsBound(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(100)})
	gws := w.gateways(t, 2)
	dead := gws[1]
	require.Equal(t, metering.Charged, w.chargeLeased(t, dead, key, cr(1)).Status)
	for i := 0; i < 5; i++ {
		require.Equal(t, metering.Charged, w.chargeLeased(t, dead, key, cr(1)).Status)
	}
	require.Equal(t, 6, dead.PendingLeaseUsesForTest(), "nothing flushed yet (the flush interval has not passed)")
	dead.CrashLeasesForTest()
	uid := w.view(t, "u").ID
	require.Equal(t, int64(cr(74)), w.redisUser(t, uid)["pr"])

	_, err := w.Engine.SetUserActive(w.ctx, "test", "u", false)
	require.NoError(t, err, "the recall gives up on a gateway whose heartbeat ran out")
	require.False(t, dead.LeaseAliveForTest(), "a gateway the admin stopped waiting for admits nothing from memory")

	s, err := w.Engine.NewSweeper(metering.SweeperConfig{Interval: time.Hour})
	require.NoError(t, err)
	n, err := s.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 0, n, "not before the lease's deadline and grace")
	w.Clock.Advance(3 * time.Minute)
	n, err = s.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	// The six admitted requests were never flushed: the whole lease went back.
	require.Equal(t, int64(cr(100)), w.redisUser(t, uid)["pr"])
	// Had the gateway only lost Redis, it records their usage when it is
	// back (cost without amounts: the user keeps the credits) and then
	// refuses the deactivated key.
	require.Equal(t, metering.KeyRefused, w.chargeLeased(t, dead, key, cr(1)).Status)
	require.Equal(t, int64(cr(100)), w.redisUser(t, uid)["pr"])
	w.drainAndCheck(t)
	require.Equal(t, int64(6), w.pgInt(t, `SELECT coalesce(sum(requests), 0) FROM usage_daily WHERE user_id = $1`, uid))
	require.Empty(t, w.rollupMismatches(t))
}

// A lease whose take answer was lost is ended whole; one whose take never
// ran can never run later.
func TestLeaseEndBeforeTakeLeavesAMarker(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	w.user(t, metering.UserSpec{Username: "u", Purchased: cr(10)})
	uid := w.view(t, "u").ID
	require.NoError(t, w.Engine.EndLeaseForTest(w.ctx, "never-taken", uid, 0))
	n, err := w.Redis.Exists(w.ctx, w.Engine.Keys().ShardOf(0, uid).CreditLease("never-taken")).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the marker refuses a late take")
}

// Redis comes back without its last writes (appendfsync everysec), all of
// them already in the ledger: a lease whose end was lost is not ended
// twice, and a lease whose take was lost is restored, so its gateway can
// still give back what it did not use.
func TestLeasesAfterRedisLostItsLastWrites(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	annKey := w.user(t, metering.UserSpec{Username: "ann", Purchased: cr(40)})
	bobKey := w.user(t, metering.UserSpec{Username: "bob", Purchased: cr(40)})
	e := w.gateways(t, 1)[0]
	require.Equal(t, metering.Charged, w.chargeLeased(t, e, annKey, cr(1)).Status)
	w.Drain(t)
	snap := w.SnapshotRedis(t)

	// The lost second: ann's lease ends after two requests, bob takes one
	// and uses three credits of it.
	require.Equal(t, metering.Charged, w.chargeLeased(t, e, annKey, cr(1)).Status)
	e.EndLeases(w.ctx)
	for i := 0; i < 3; i++ {
		require.Equal(t, metering.Charged, w.chargeLeased(t, e, bobKey, cr(1)).Status)
	}
	w.Drain(t)

	w.RestartRedisFrom(t, snap)
	require.NoError(t, w.Engine.VerifyRedis(w.ctx))
	e.EndLeases(w.ctx)
	require.Equal(t, cr(38), w.view(t, "ann").Live.Effective, "ann's lease was ended a second time")
	require.Equal(t, cr(37), w.view(t, "bob").Live.Effective, "bob's unused lease did not come back")
	for _, sh := range w.Engine.Keys().Shards() {
		n, err := w.Redis.ZCard(w.ctx, sh.CreditLeases()).Result()
		require.NoError(t, err)
		require.Zero(t, n)
	}
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
}

// Near a zero balance a lease would hold too little: each request is a
// plain charge, in Redis at once, one usage event with its amounts and
// its label, and no lease to end.
func TestLowBalanceLeasedRequestsArePlainCharges(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(3)})
	e := w.gateways(t, 1)[0]
	uid := w.view(t, "u").ID
	for left := int64(2); left >= 0; left-- {
		res := w.chargeLeased(t, e, key, cr(1))
		require.Equal(t, metering.Charged, res.Status)
		require.Equal(t, metering.Split{Purchased: cr(1)}, res.Taken)
		require.Equal(t, int64(cr(left)), w.redisUser(t, uid)["pr"], "charged in Redis at once")
	}
	require.Equal(t, metering.Insufficient, w.chargeLeased(t, e, key, cr(1)).Status)
	require.Zero(t, e.PendingLeaseUsesForTest())
	w.drainAndCheck(t)
	require.Equal(t, int64(3), w.pgInt(t, `SELECT count(*) FROM events
		WHERE user_id = $1 AND kind = 'usage' AND cost = $2 AND d_purchased = -$2 AND request = 'GET /test'`, uid, int64(cr(1))))
	require.Zero(t, w.pgInt(t, `SELECT count(*) FROM events WHERE user_id = $1 AND kind IN ('lease', 'lease_end')`, uid))
}

// A lease of a single request is a charge (a usage event with the
// request's label); ending it because its answer was lost undoes it with a
// void under the same label and the note given, so the ledger shows the
// request charged and undone. Ending it again changes nothing.
func TestSingleRequestLeaseUndoneUnderItsLabel(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(10)})
	require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status) // loads the user into Redis
	uid := w.view(t, "u").ID
	keys := w.Engine.Keys().ShardOf(0, uid) // "u" has no project
	f, err := w.Redis.HMGet(w.ctx, keys.User(uid), "kh", "v").Result()
	require.NoError(t, err)
	take := metering.LeaseTakeArgs{UserKey: keys.User(uid), ProjectKey: keys.User(uid), EventsKey: keys.Events(),
		RecordKey: keys.CreditLease("single-1"), LeasesKey: keys.CreditLeases(), UserLeasesKey: keys.UserCreditLeases(uid),
		KeyHash: f[0].(string), UserVersion: f[1].(string), NowMs: monday.UnixMilli(), AllowanceStart: "0",
		Month: "0", Cost: cr(2), Want: cr(2), LeaseID: "single-1", UserID: strconv.FormatInt(uid, 10),
		DeadlineMs: monday.Add(time.Minute).UnixMilli(), GatewayID: "g", Request: "GET /single", SingleSeconds: 60}
	res, err := metering.RunLeaseTake(w.ctx, w.Redis, take)
	require.NoError(t, err)
	require.Equal(t, []int64{0, int64(cr(7)), 0, 0, 0, int64(cr(2)), -1, int64(cr(2))}, res, "no allowance period: -1")
	require.Equal(t, int64(cr(7)), w.redisUser(t, uid)["pr"])
	end := metering.LeaseEndArgs{UserKey: keys.User(uid), ProjectKey: keys.User(uid), EventsKey: keys.Events(),
		RecordKey: keys.CreditLease("single-1"), LeasesKey: keys.CreditLeases(), UserLeasesKey: keys.UserCreditLeases(uid),
		NowMs: monday.UnixMilli(), LeaseID: "single-1", Used: 0, MarkerSeconds: 60, Note: "lost"}
	res, err = metering.RunLeaseEnd(w.ctx, w.Redis, end)
	require.NoError(t, err)
	require.Equal(t, []int64{0, int64(cr(2)), 0}, res)
	res, err = metering.RunLeaseEnd(w.ctx, w.Redis, end)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, res, "ended twice")
	require.Equal(t, int64(cr(9)), w.redisUser(t, uid)["pr"])
	w.drainAndCheck(t)
	require.Equal(t, int64(1), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id = 'single-1' AND kind = 'usage'
		AND request = 'GET /single' AND cost = $1 AND d_purchased = -$1::bigint`, int64(cr(2))))
	require.Equal(t, int64(1), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id = 'single-1:e' AND kind = 'void'
		AND request = 'GET /single' AND cost = -$1::bigint AND d_purchased = $1 AND note = 'lost'`, int64(cr(2))))
	require.Empty(t, w.rollupMismatches(t))
}
