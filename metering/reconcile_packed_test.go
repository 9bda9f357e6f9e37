package metering_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// The reconciler with packed entries (a credit lease's flush: many usage
// events in one stream entry, event_pack.go).

// packedUses are n uses named prefix-0, prefix-1, … of cost each.
func packedUses(prefix string, n int, cost metering.Credits) []metering.LeaseUse {
	out := make([]metering.LeaseUse, n)
	for i := range out {
		out[i] = metering.LeaseUse{EventID: fmt.Sprintf("%s-%d", prefix, i), AtMs: monday.UnixMilli(), Cost: cost,
			Request: "GET /packed"}
	}
	return out
}

// pgStrings is the one text column of a query's rows.
func (w *world) pgStrings(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	rows, err := w.DB.Query(w.ctx, sql, args...)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// xaddPacked appends a packed entry of uses for user uid, as lease_flush.lua does.
func (w *world) xaddPacked(t *testing.T, uid int64, uses ...metering.LeaseUse) string {
	t.Helper()
	return w.xadd(t, "k", "usage", "u", strconv.FormatInt(uid, 10), "un", "b", "n", strconv.Itoa(len(uses)),
		"ev", metering.PackUsesForTest(uses...))
}

// Packed and single entries in one batch: every event recorded once, with
// its own id, cost, time and label, and counted in the rollup.
func TestReconcilerRecordsPackedAndSingleEntriesTogether(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", Purchased: cr(100)})
	uid := w.view(t, "b").ID
	w.charge(t, key, cr(1))
	w.xaddPacked(t, uid, packedUses("pa", 200, 1000)...)
	w.charge(t, key, cr(1))
	w.xaddPacked(t, uid, packedUses("pb", 3, 2000)...)
	w.xaddPacked(t, uid, packedUses("pc", 1, 3000)...)
	w.charge(t, key, cr(1))
	entries := w.streamLen(t)
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "mixed"})
	n, err := r.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int(entries)-3+204, n, "one batch: every event of every entry")
	require.Equal(t, int64(204), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id LIKE 'p_-%' AND kind = 'usage'
		AND user_id = $1 AND username = 'b' AND request = 'GET /packed' AND occurred_at = $2`, uid, monday))
	require.Equal(t, int64(200*1000+3*2000+3000), w.pgInt(t, `SELECT sum(cost) FROM events WHERE event_id LIKE 'p_-%'`))
	require.Equal(t, int64(207), w.pgInt(t, `SELECT sum(requests) FROM usage_daily WHERE user_id = $1`, uid))
	require.Empty(t, w.rollupMismatches(t))
	requireDrained(t, w)
}

// A batch holds at most BatchSize events, however they are packed: a
// read that meets denser entries than the one before keeps what fits and
// leaves the rest pending, read first by the next batch; an entry of more
// events than a batch is a batch of its own. Every event once.
func TestReconcilerBatchesCountEventsNotEntries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.user(t, metering.UserSpec{Username: "b"})
	uid := w.view(t, "b").ID
	at := strconv.FormatInt(monday.UnixMilli(), 10)
	singles := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			w.xadd(t, "id", fmt.Sprintf("%s-%d", prefix, i), "k", "usage", "t", at, "u", strconv.FormatInt(uid, 10),
				"un", "b", "c", "1")
		}
	}
	singles("sa", 100)
	w.xaddPacked(t, uid, packedUses("pa", 200, 1)...)
	singles("sb", 100)
	w.xaddPacked(t, uid, packedUses("pb", 200, 1)...)
	w.xaddPacked(t, uid, packedUses("pc", 256, 1)...)
	singles("sc", 30)
	const total = 100 + 200 + 100 + 200 + 256 + 30
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "small", BatchSize: 250, Interval: -1})
	done := 0
	for i := 0; done < total && i < 100; i++ {
		n, err := r.RunOnce(w.ctx)
		require.NoError(t, err)
		require.True(t, n <= 250 || n == 256, "a batch of %d events", n)
		done += n
	}
	require.Equal(t, total, done)
	require.Equal(t, int64(total), w.pgInt(t, `SELECT count(*) FROM events WHERE user_id = $1 AND kind = 'usage'`, uid))
	require.Equal(t, int64(total), w.pgInt(t, `SELECT sum(requests) FROM usage_daily WHERE user_id = $1`, uid))
	require.Equal(t, int64(0), w.pendingFor(t, "small"))
	requireDrained(t, w)
}

// failAcks makes a Redis client's XACKs fail while on, as a gateway that
// died (or lost Redis) between the commit and the acknowledgement.
type failAcks struct{ on atomic.Bool }

func (f *failAcks) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *failAcks) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.on.Load() && cmd.Name() == "xack" {
			return errors.New("connection lost before the acknowledgement (test)")
		}
		return next(ctx, cmd)
	}
}

func (f *failAcks) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if f.on.Load() && c.Name() == "xack" {
				return errors.New("connection lost before the acknowledgement (test)")
			}
		}
		return next(ctx, cmds)
	}
}

// Real leased traffic (packed flushes, lease takes and ends), a batch
// committed whose acknowledgement never reached Redis: the entries stay
// pending, are applied again, and every event counts exactly once.
func TestPackedEntriesReplayedAfterACrashBetweenCommitAndAck(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(50)})
	e := w.gateways(t, 1)[0]
	const admitted = 700
	for i := 0; i < admitted; i++ {
		require.Equal(t, metering.Charged, w.chargeLeased(t, e, key, 50_000).Status)
	}
	e.EndLeases(w.ctx)
	uid := w.view(t, "u").ID
	packed := 0
	msgs := w.streamEntries(t)
	for _, m := range msgs {
		if _, ok := m.Values["ev"]; ok {
			packed++
		}
	}
	require.Greater(t, packed, 1, "the leases' flushes are packed entries")

	opt := *w.Redis.Options()
	rdb := redis.NewClient(&opt)
	t.Cleanup(func() { rdb.Close() })
	hook := &failAcks{}
	rdb.AddHook(hook)
	crashing, err := metering.NewEngine(rdb, w.DB, w.Config)
	require.NoError(t, err)
	t.Cleanup(crashing.Close)
	r := newReconciler(t, crashing, metering.ReconcilerConfig{Consumer: "c"})
	hook.on.Store(true)
	_, err = r.RunOnce(w.ctx)
	require.ErrorContains(t, err, "acknowledgement")
	require.Equal(t, int64(len(msgs)), w.pendingFor(t, "c"), "committed, not acknowledged")
	usage := `SELECT count(*) FROM events WHERE user_id = $1 AND kind = 'usage'`
	require.Equal(t, int64(admitted), w.pgInt(t, usage, uid), "the batch is in the ledger")

	hook.on.Store(false)
	runUntilIdle(t, r)
	require.Equal(t, int64(0), w.pendingFor(t, "c"))
	require.Equal(t, int64(admitted), w.pgInt(t, usage, uid), "applied again, counted once")
	require.Equal(t, int64(admitted), w.pgInt(t, `SELECT sum(requests) FROM usage_daily WHERE user_id = $1`, uid))
	require.Equal(t, int64(admitted*50_000), w.pgInt(t, `SELECT sum(credits) FROM usage_daily WHERE user_id = $1`, uid))
	require.Empty(t, w.rollupMismatches(t))
	requireDrained(t, w)
}

// A malformed packed entry is dead-lettered whole (none of its events is
// recorded); an event of a packed entry that is malformed alone, or that
// Postgres refuses, is dead-lettered alone with its position, and the
// entry's other events are recorded. Two refused events of one entry are
// two dead letters.
func TestReconcilerDeadLettersPackedEntriesAndTheirEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", Purchased: cr(50)})
	uid := w.view(t, "b").ID
	remove := w.RefuseEvents(t, "NEW.request = 'poison'", "23514")
	w.charge(t, key, cr(1))
	whole := w.xadd(t, "k", "usage", "u", strconv.FormatInt(uid, 10), "un", "b", "n", "2",
		"ev", metering.PackUsesForTest(packedUses("whole", 1, 1)...))
	good := packedUses("alone", 3, 1)
	badOne := w.xadd(t, "k", "usage", "u", strconv.FormatInt(uid, 10), "un", "b", "n", "3",
		"ev", metering.PackUsesForTest(good[0])+"7:alone-14:soon1:1"+"0:"+metering.PackUsesForTest(good[2]))
	refused := packedUses("refused", 5, 1)
	refused[1].Request, refused[3].Request = "poison", "poison"
	twoRefused := w.xaddPacked(t, uid, refused...)
	w.charge(t, key, cr(1))

	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "c"})
	runUntilIdle(t, r)
	require.Equal(t, int64(0), w.streamLen(t), "every entry acknowledged and trimmed")
	require.Equal(t, []string{"alone-0", "alone-2", "refused-0", "refused-2", "refused-4"},
		w.pgStrings(t, `SELECT event_id FROM events WHERE event_id LIKE 'alone-%' OR event_id LIKE 'refused-%' OR event_id LIKE 'whole-%' ORDER BY 1`))

	letters := w.deadLetters(t)
	require.Len(t, letters, 4)
	type got struct {
		entry  string
		index  int
		reason string
		event  string
	}
	var all []got
	for _, d := range letters {
		g := got{entry: d.Entry, index: d.Index, reason: d.Reason}
		if d.Event != nil {
			g.event = d.Event.ID
		}
		require.NotEmpty(t, d.Fields["ev"], "the entry's fields as written")
		require.False(t, d.Money)
		all = append(all, g)
	}
	for i := range all {
		switch {
		case all[i].entry == whole:
			require.Equal(t, -1, all[i].index)
			require.Contains(t, all[i].reason, "malformed packed entry: packed entry holds 1 events, its count says 2")
			require.Empty(t, all[i].event)
		case all[i].entry == badOne:
			require.Equal(t, 1, all[i].index)
			require.Contains(t, all[i].reason, `malformed event 1 of a packed entry: field t="soon"`)
			require.Empty(t, all[i].event, "its values do not decode")
		default:
			require.Equal(t, twoRefused, all[i].entry)
			require.Contains(t, []int{1, 3}, all[i].index)
			require.Contains(t, all[i].reason, "SQLSTATE 23514")
			require.Equal(t, "refused-"+strconv.Itoa(all[i].index), all[i].event)
		}
	}
	require.Equal(t, int64(0), w.pendingFor(t, "c"))
	remove()
	w.drainAndCheck(t)
}

// Request labels that look like the packed encoding, or that Postgres
// cannot store, go through a real lease's flush: the stream holds them as
// the gateway gave them, and the ledger records them cleaned, each event
// once.
func TestHostileLabelsRoundTripThroughALeaseFlush(t *testing.T) {
	t.Parallel()
	w := leaseWorld(t)
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(50)})
	e := w.gateways(t, 1)[0]
	labels := []string{"GET /first", "3:abc", "12:x:y", "0:", ":", "a\x00b", "\xff\xfe", "1:a1:11:20:",
		strings.Repeat("9:", 400), ""}
	for _, l := range labels {
		res, err := e.ChargeLeased(w.ctx, key, cr(1), l)
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	e.EndLeases(w.ctx)
	msgs := w.streamEntries(t)
	var inStream []string
	for _, m := range msgs {
		if _, ok := m.Values["ev"]; !ok {
			continue
		}
		evs, err := metering.EntryEventsForTest(m.Values)
		require.NoError(t, err)
		for _, ev := range evs {
			inStream = append(inStream, ev.Request)
		}
	}
	require.Equal(t, labels, inStream, "every request's label as the gateway gave it")
	w.drainAndCheck(t)
	uid := w.view(t, "u").ID
	stored := w.pgStrings(t, `SELECT coalesce(request, '') FROM events WHERE user_id = $1 AND kind = 'usage' ORDER BY seq`, uid)
	var want []string
	for _, l := range labels {
		want = append(want, metering.CleanText(l, metering.MaxRequestLabel))
	}
	require.Equal(t, want, stored)
}

// A flush of more uses than one entry packs (maxPackedEvents, 256) makes
// several entries, in order, and the ledger gets every use once.
func TestLeaseFlushOfManyUsesIsSplitInEntries(t *testing.T) {
	t.Parallel()
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(monday),
		Leases: metering.LeaseConfig{Heartbeat: time.Second, Idle: time.Hour, Flush: time.Hour,
			Requests: 1000, FlushBatch: 10000}})
	w := &world{Bundle: b, ctx: context.Background()}
	key := w.user(t, metering.UserSpec{Username: "u", Purchased: cr(100)})
	e := w.gateways(t, 1)[0]
	const uses = 600
	for i := 0; i < uses; i++ {
		require.Equal(t, metering.Charged, w.chargeLeased(t, e, key, 1000).Status)
	}
	require.Equal(t, uses, e.PendingLeaseUsesForTest(), "one lease, nothing flushed yet")
	e.EndLeases(w.ctx)
	msgs := w.streamEntries(t)
	var sizes []string
	for _, m := range msgs {
		if n, ok := m.Values["n"].(string); ok {
			sizes = append(sizes, n)
		}
	}
	require.Equal(t, []string{"256", "256", "88"}, sizes)
	w.drainAndCheck(t)
	uid := w.view(t, "u").ID
	require.Equal(t, int64(uses), w.pgInt(t, `SELECT count(*) FROM events WHERE user_id = $1 AND kind = 'usage'`, uid))
	require.Empty(t, w.rollupMismatches(t))
}

// The healer's replay of the stream (after Redis lost its last writes)
// reads packed entries as the reconciler does, in reads sized by events
// (more entries than its first read takes), and records each event once;
// the reconciler then finds them all recorded.
func TestHealReplayRecordsPackedEntries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.user(t, metering.UserSpec{Username: "b"})
	uid := w.view(t, "b").ID
	const entries, per = 40, 200 // the replay's first read takes 19 entries
	for i := 0; i < entries; i++ {
		w.xaddPacked(t, uid, packedUses(fmt.Sprintf("h%d", i), per, 1)...)
	}
	n, err := w.Engine.ReplayStreamForTest(w.ctx)
	require.NoError(t, err)
	require.Equal(t, entries*per, n)
	require.Equal(t, int64(entries*per), w.pgInt(t, `SELECT count(*) FROM events WHERE user_id = $1 AND kind = 'usage'`, uid))
	_, err = w.Engine.ReplayStreamForTest(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(entries*per), w.pgInt(t, `SELECT count(*) FROM events WHERE user_id = $1 AND kind = 'usage'`, uid),
		"replayed again: recorded once")
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "after-heal"})
	require.Equal(t, entries*per, runUntilIdle(t, r))
	require.Equal(t, int64(entries*per), w.pgInt(t, `SELECT sum(requests) FROM usage_daily WHERE user_id = $1`, uid))
	requireDrained(t, w)
}
