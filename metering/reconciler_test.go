package metering_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

const group = "reconciler" // ReconcilerConfig's default group

// runUntilIdle calls RunOnce until it reports nothing done (bounded, unlike
// a loop on the stream length, so a stream that never empties fails fast).
func runUntilIdle(t *testing.T, r *metering.Reconciler) int {
	t.Helper()
	total := 0
	for i := 0; i < 1000; i++ {
		n, err := r.RunOnce(context.Background())
		require.NoError(t, err)
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatal("reconciler never went idle")
	return total
}

// someTraffic makes usage, refill, grant, adjustment and pool events for a
// few users and returns their keys.
func someTraffic(t *testing.T, w *world, charges int) []string {
	t.Helper()
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(3), Period: metering.PeriodDaily,
		TimeZone: "Europe/Berlin", PoolEnabled: true, PoolBalance: cr(20), PoolPerUserLimit: ptr(cr(5))})
	keys := []string{
		w.user(t, metering.UserSpec{Username: "a", Project: "p", InitialCredits: cr(10), MonthlyGrant: cr(2)}),
		w.user(t, metering.UserSpec{Username: "b", Purchased: cr(50)}),
	}
	for i := 0; i < charges; i++ {
		res := w.charge(t, keys[i%2], 700_000)
		require.Equal(t, metering.Charged, res.Status)
	}
	_, err := w.Engine.AdjustCredits(w.ctx, "test", "b", metering.BucketPurchased, -cr(1), "refund")
	require.NoError(t, err)
	_, err = w.Engine.AdjustPool(w.ctx, "test", "p", cr(4), "top up")
	require.NoError(t, err)
	return keys
}

// TestEventIDsAreUnique: every balance change carries a unique event id, the
// ledger's idempotency key. The refill and grant events of a charge derive
// their ids from the usage event's; they must never equal a later event's id,
// or the ledger silently drops that later event as a replay.
func TestEventIDsAreUnique(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(1), Period: metering.PeriodDaily})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p", Purchased: cr(1000), MonthlyGrant: cr(1)})
	uid := w.view(t, "u").ID
	const charges = 400 // a few hundred requests of one gateway after a refill
	for i := 0; i < charges; i++ {
		require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
	}
	msgs := w.streamEntries(t)
	seen := map[string]string{}
	for _, m := range msgs {
		id, kind := m.Values["id"].(string), m.Values["k"].(string)
		if prev, dup := seen[id]; dup {
			t.Errorf("event id %q used by a %s event and again by a %s event", id, prev, kind)
		}
		seen[id] = kind
	}
	w.Drain(t)
	require.Equal(t, int64(charges), w.ledgerUsage(t, uid).events, "every usage event reaches the ledger")
	w.AssertConsistent(t)
}

// TestReconcilerAppliesReplayedEventsOnce: entries delivered again (a crash
// between commit and XACK, or any duplicate in the stream) change nothing.
func TestReconcilerAppliesReplayedEventsOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	someTraffic(t, w, 12)
	msgs := w.streamEntries(t)
	require.Greater(t, len(msgs), 12)
	w.drainAndCheck(t)
	want := w.pgSnapshot(t)
	events := w.pgInt(t, `SELECT count(*) FROM events`)
	require.Equal(t, int64(len(msgs)), events)

	stream := w.Engine.Keys().Shard(0).Events()
	replay := func() {
		for _, m := range msgs {
			require.NoError(t, w.Redis.XAdd(w.ctx, &redis.XAddArgs{Stream: stream, Values: m.Values}).Err())
		}
	}
	// Twice in a row, so one batch holds two copies of each event.
	replay()
	replay()
	require.Equal(t, int64(2*len(msgs)), w.streamLen(t))
	w.drainAndCheck(t)
	require.Equal(t, want, w.pgSnapshot(t), "replayed events must not be counted again")

	// And once more, one entry per batch.
	replay()
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "one-by-one", BatchSize: 1})
	require.Equal(t, len(msgs), runUntilIdle(t, r))
	require.Equal(t, int64(0), w.streamLen(t))
	require.Equal(t, want, w.pgSnapshot(t))
	require.Equal(t, events, w.pgInt(t, `SELECT count(*) FROM events`))
	w.AssertConsistent(t)
}

// lockEvents holds an ACCESS EXCLUSIVE lock on the test schema's events
// table until the returned function is called.
func lockEvents(t *testing.T, w *world) (release func()) {
	t.Helper()
	cfg, err := pgx.ParseConfig(meteringtest.DatabaseURL())
	require.NoError(t, err)
	cfg.RuntimeParams["search_path"] = w.Schema
	conn, err := pgx.ConnectConfig(w.ctx, cfg)
	require.NoError(t, err)
	tx, err := conn.Begin(w.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(w.ctx, `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	done := false
	release = func() {
		if !done {
			done = true
			tx.Rollback(w.ctx)
			conn.Close(w.ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// runBlocked runs r.RunOnce while lockEvents holds the ledger: its write
// waits on the lock while the entries it read become the consumer's
// pending ones. Once want entries are pending the call is given up, and
// it must fail. (Given up by that condition, not after a fixed time, which
// a loaded machine could overrun before the reads were done.)
func runBlocked(t *testing.T, w *world, r *metering.Reconciler, consumer string, want int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	failed := make(chan error, 1)
	go func() {
		_, err := r.RunOnce(ctx)
		failed <- err
	}()
	require.Eventually(t, func() bool { n, _ := w.tryPending(consumer); return n == want }, time.Minute,
		10*time.Millisecond, "%d entries pending for %s", want, consumer)
	cancel()
	require.Error(t, <-failed, "the batch cannot commit while events is locked")
}

// TestReconcilerFailedBatchStaysPending: a batch whose transaction fails is
// neither acknowledged nor trimmed; the same consumer's next run applies it.
func TestReconcilerFailedBatchStaysPending(t *testing.T) {
	t.Parallel()
	w := oneStreamWorld(t, monday)
	keys := someTraffic(t, w, 10)
	entries := w.streamLen(t)
	require.Equal(t, int64(0), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))

	release := lockEvents(t, w)
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "c1"})
	runBlocked(t, w, r, "c1", entries)
	require.Equal(t, entries, w.streamLen(t), "nothing trimmed")
	lag, err := w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.Greater(t, lag, time.Duration(0))
	release()
	require.Equal(t, int64(0), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`), "the failed batch left no trace")

	// New traffic arrives behind the pending entries.
	for i := 0; i < 4; i++ {
		require.Equal(t, metering.Charged, w.charge(t, keys[1], cr(1)).Status)
	}
	n, err := r.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int(entries), n, "the retry reads its own pending entries first")
	require.Equal(t, int64(0), w.pendingFor(t, "c1"))
	require.Equal(t, int64(10), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	require.Equal(t, 4, runUntilIdle(t, r))
	require.Equal(t, int64(0), w.streamLen(t))
	require.Equal(t, int64(14), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	w.drainAndCheck(t)
}

// TestReconcilerLoopRetriesAfterFailure: the background loop keeps retrying
// a batch that cannot commit and applies it once Postgres lets it.
func TestReconcilerLoopRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	someTraffic(t, w, 6)
	release := lockEvents(t, w)
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "loop"})
	require.NoError(t, r.Start(context.Background()))
	entries := w.streamLen(t)
	require.Eventually(t, func() bool { n, _ := w.tryPending("loop"); return n == entries }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the loop is stuck on the lock (events cannot be queried meanwhile)
	require.Equal(t, entries, w.streamLen(t), "nothing trimmed while the batch cannot commit")
	release()
	require.Eventually(t, func() bool { return w.tryStreamLen() == 0 }, 10*time.Second, 10*time.Millisecond)
	r.Stop()
	require.Equal(t, int64(6), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	w.drainAndCheck(t)
}

// readAsDeadConsumer takes every new entry into the PEL of a consumer that
// never acknowledges, as a gateway killed mid-batch would.
func readAsDeadConsumer(t *testing.T, w *world, consumer string) int {
	t.Helper()
	read := 0
	for _, sh := range w.Engine.Keys().Shards() {
		stream := sh.Events()
		err := w.Redis.XGroupCreateMkStream(w.ctx, stream, group, "0").Err()
		if err != nil {
			require.Contains(t, err.Error(), "BUSYGROUP")
		}
		res, err := w.Redis.XReadGroup(w.ctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer,
			Streams: []string{stream, ">"}, Count: 100000, Block: -1}).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing new in this shard's stream
		}
		require.NoError(t, err)
		require.Len(t, res, 1)
		read += len(res[0].Messages)
	}
	return read
}

// TestReconcilerClaimsFromDeadConsumer: entries a dead consumer read and
// never acknowledged are taken over after ClaimIdle, not before.
func TestReconcilerClaimsFromDeadConsumer(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	someTraffic(t, w, 8)
	taken := readAsDeadConsumer(t, w, "dead")
	require.Greater(t, taken, 8)

	live := w.reconciler(t, metering.ReconcilerConfig{Consumer: "live", ClaimIdle: time.Second})
	n, err := live.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 0, n, "entries idle for less than ClaimIdle stay with their consumer")
	require.Equal(t, int64(taken), w.pendingFor(t, "dead"))

	time.Sleep(1100 * time.Millisecond) // Redis measures idle time in real time
	n, err = live.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, taken, n)
	require.Equal(t, int64(0), w.pendingFor(t, "dead"))
	require.Equal(t, int64(0), w.pendingFor(t, "live"))
	require.Equal(t, int64(0), w.streamLen(t))
	require.Equal(t, int64(8), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	w.drainAndCheck(t)
}

// TestReconcilerTrimsEntriesAckedOutOfOrder: when batches finish out of
// stream order (a claimed or retried batch older than one a colleague
// already applied), the stream must still end up empty once everything is
// acknowledged; otherwise ReconcileLag reports a growing lag forever for
// events long in Postgres.
func TestReconcilerTrimsEntriesAckedOutOfOrder(t *testing.T) {
	t.Parallel()
	t.Run("claimed from a dead consumer", func(t *testing.T) {
		t.Parallel()
		w := oneStreamWorld(t, monday)
		keys := someTraffic(t, w, 6)
		readAsDeadConsumer(t, w, "dead")
		for i := 0; i < 5; i++ {
			require.Equal(t, metering.Charged, w.charge(t, keys[1], cr(1)).Status)
		}
		live := w.reconciler(t, metering.ReconcilerConfig{Consumer: "live", ClaimIdle: time.Second})
		require.Equal(t, 5, runUntilIdle(t, live), "the newer entries first")
		time.Sleep(1100 * time.Millisecond)
		runUntilIdle(t, live)
		require.Equal(t, int64(11), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
		require.Equal(t, int64(0), w.pendingFor(t, "dead")+w.pendingFor(t, "live"))
		requireDrained(t, w)
	})
	t.Run("two gateways, one retrying", func(t *testing.T) {
		t.Parallel()
		w := oneStreamWorld(t, monday)
		keys := someTraffic(t, w, 6)
		release := lockEvents(t, w)
		a := w.reconciler(t, metering.ReconcilerConfig{Consumer: "a"})
		runBlocked(t, w, a, "a", w.streamLen(t))
		release()
		for i := 0; i < 5; i++ {
			require.Equal(t, metering.Charged, w.charge(t, keys[1], cr(1)).Status)
		}
		b := w.reconciler(t, metering.ReconcilerConfig{Consumer: "b"})
		require.Equal(t, 5, runUntilIdle(t, b))
		runUntilIdle(t, a)
		require.Equal(t, int64(11), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
		require.Equal(t, int64(0), w.pendingFor(t, "a")+w.pendingFor(t, "b"))
		requireDrained(t, w)
	})
}

// requireDrained: every event is acknowledged, so the stream is empty and
// the lag zero. (Not Drain, which would wait forever for a stream that
// never empties.)
func requireDrained(t *testing.T, w *world) {
	t.Helper()
	lag, err := w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(0), w.streamLen(t), "entries acknowledged but left in the stream")
	require.Equal(t, time.Duration(0), lag, "lag reported for events already in Postgres")
	w.AssertConsistent(t)
}

func TestReconcileLag(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	lag, err := w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.Equal(t, time.Duration(0), lag, "no stream yet")

	someTraffic(t, w, 3)
	time.Sleep(20 * time.Millisecond) // lag is measured against Redis's real clock
	lag, err = w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, lag, 20*time.Millisecond, "the oldest event has waited at least this long")
	require.Less(t, lag, time.Minute)

	// Read but not acknowledged still counts as waiting.
	readAsDeadConsumer(t, w, "slow")
	lag2, err := w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, lag2, lag)
	h := w.Engine.CheckHealth(w.ctx, time.Second)
	require.True(t, h.OK())
	require.Greater(t, h.ReconcileLag, time.Duration(0))

	time.Sleep(1100 * time.Millisecond)
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "c", ClaimIdle: time.Second})
	runUntilIdle(t, r)
	lag, err = w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.Equal(t, time.Duration(0), lag)
	require.Equal(t, time.Duration(0), w.Engine.CheckHealth(w.ctx, time.Second).ReconcileLag)
	w.drainAndCheck(t)
}

// returnsWithin reports whether f returns within d.
func returnsWithin(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func TestReconcilerStartStop(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(100)})
	r, err := w.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "bg"}) // default 1s Block
	require.NoError(t, err)
	require.True(t, returnsWithin(time.Second, r.Stop), "Stop before Start is a no-op")

	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, r.Start(ctx))
	_ = r.Start(ctx) // a second Start may refuse, but must not break the first
	cancel()         // the loop outlives the context that started it; Stop ends it
	for i := 0; i < 5; i++ {
		require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
	}
	require.Eventually(t, func() bool {
		return w.tryInt(`SELECT count(*) FROM events WHERE kind = 'usage'`) == 5 && w.tryStreamLen() == 0
	}, 10*time.Second, 10*time.Millisecond, "the loop reconciles in the background")

	require.True(t, returnsWithin(5*time.Second, func() {
		done := make(chan struct{})
		go func() { r.Stop(); close(done) }()
		r.Stop()
		<-done
	}), "concurrent Stops return")
	require.True(t, returnsWithin(time.Second, r.Stop), "Stop is idempotent")

	// Stopped means stopped: new events stay in the stream.
	require.Equal(t, metering.Charged, w.charge(t, key, cr(1)).Status)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, int64(1), w.streamLen(t))
	require.Equal(t, int64(5), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	w.drainAndCheck(t)
}

// TestReconcilerStopIsPrompt: Stop must not wait out a long blocking read
// for new events (Caddy stops the old app on every config reload).
func TestReconcilerStopIsPrompt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	r, err := w.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "bg", Block: 5 * time.Second})
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	time.Sleep(200 * time.Millisecond) // the loop is now blocked in XREADGROUP
	stopped := returnsWithin(2*time.Second, r.Stop)
	if !stopped {
		r.Stop() // let it finish before the stores go away
	}
	require.True(t, stopped, "Stop waited for the whole 5s Block of an idle read")
}
