package metering_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

func newReconciler(t *testing.T, e *metering.Engine, cfg metering.ReconcilerConfig) *metering.Reconciler {
	t.Helper()
	if cfg.Block == 0 {
		cfg.Block = 10 * time.Millisecond
	}
	r, err := e.NewReconciler(cfg)
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	return r
}

// TestReconcilerRecordsUnstorableTexts: texts Postgres refuses (NUL,
// invalid UTF-8, too long) in events that reached the stream anyway are
// recorded cleaned, with a warning; the money they carry is never dropped
// and nothing is dead-lettered. Before, Postgres refused the whole batch
// and the reconciler retried it forever.
func TestReconcilerRecordsUnstorableTexts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", InitialCredits: cr(10), Purchased: cr(50)})
	uid := w.view(t, "b").ID
	w.charge(t, key, cr(1))
	w.xadd(t, "id", "path-1", "k", "usage", "t", "1772452800000", "u", strconv.FormatInt(uid, 10),
		"un", "b", "rq", "GET /v1/x\xff\x00y")
	w.xaddAdjust(t, uid, "note-1", 5_000_000, "ac", "ops\xff", "no", "bad\x00note", "un", "b\x00")
	w.xadd(t, "id", "model-1", "k", "hold", "t", "1772452800000", "u", strconv.FormatInt(uid, 10),
		"un", "b", "m", strings.Repeat("m", 300)+"\x00", "rs", "0")
	w.charge(t, key, cr(1))

	e, logs := w.observedEngine(t)
	r := newReconciler(t, e, metering.ReconcilerConfig{Consumer: "texts"})
	require.Equal(t, int(w.streamLen(t)), runUntilIdle(t, r), "every entry handled, none refused")
	require.Equal(t, int64(0), w.streamLen(t))
	require.Empty(t, w.deadLetters(t))

	text := func(col, id string) string {
		var s string
		require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT `+col+` FROM events WHERE event_id = $1`, id).Scan(&s))
		return s
	}
	require.Equal(t, "GET /v1/x\uFFFD\uFFFDy", text("request", "path-1"))
	require.Equal(t, "bad\uFFFDnote", text("note", "note-1"))
	require.Equal(t, "ops\uFFFD", text("actor", "note-1"))
	require.Equal(t, "b\uFFFD", text("username", "note-1"))
	model := text("model", "model-1")
	require.LessOrEqual(t, len(model), metering.MaxModelName)
	require.Equal(t, strings.Repeat("m", metering.MaxModelName), model)
	require.Equal(t, int64(cr(10-2+5)), w.pgInt(t, `SELECT awarded FROM users WHERE id = $1`, uid),
		"the adjustment's money is in the ledger (and the two charges')")
	require.Equal(t, 5, logs.FilterMessage("event text is not storable in Postgres; recorded cleaned").Len(),
		"one warning per cleaned text: %v", logs.All())
	w.drainAndCheck(t)
}

// TestReconcilerDeadLettersWhatPostgresRefuses: entries that are malformed,
// or that Postgres refuses for their data (a balance overflowing bigint,
// a constraint), are found in their batch, moved to the dead-letter
// stream with the reason, and the rest is recorded: the reconciler goes on.
func TestReconcilerDeadLettersWhatPostgresRefuses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	// b is the poison's target; c's charges leave b's balance alone, so
	// that adding the poison to b overflows however the batch is split.
	w.user(t, metering.UserSpec{Username: "b", InitialCredits: cr(10)})
	uid := w.view(t, "b").ID
	key := w.user(t, metering.UserSpec{Username: "c", Purchased: cr(50)})
	removeTrigger := w.RefuseEvents(t, "NEW.note = 'poison'", "23514") // check_violation
	for i := 0; i < 10; i++ {
		w.charge(t, key, cr(1))
	}
	overflow := w.xadd(t, "id", "overflow-1", "k", "adjust", "t", "1772452800000", "u", strconv.FormatInt(uid, 10),
		"aw", "9223372036854775807")
	malformed := w.xadd(t, "id", "malformed-1", "k", "usage", "c", "lots")
	badID := w.xadd(t, "id", "x\x00y", "k", "usage")
	constraint := w.xadd(t, "id", "constraint-1", "k", "adjust", "t", "1772452800000", "u", strconv.FormatInt(uid, 10),
		"pr", "1000000", "no", "poison")
	for i := 0; i < 10; i++ {
		w.charge(t, key, cr(1))
	}

	e, logs := w.observedEngine(t)
	r := newReconciler(t, e, metering.ReconcilerConfig{Consumer: "c"})
	require.Equal(t, int(w.streamLen(t)), runUntilIdle(t, r), "one batch, handled without an error")
	require.Equal(t, int64(0), w.streamLen(t), "every entry acknowledged and trimmed")
	require.Equal(t, int64(20), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`), "the good events around them are recorded")
	require.Equal(t, int64(0), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id IN ('overflow-1', 'constraint-1', 'malformed-1')`))

	n, err := w.Engine.DeadLetterCount(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	byEntry := map[string]metering.DeadLetter{}
	for _, d := range w.deadLetters(t) {
		byEntry[d.Entry] = d
		require.Equal(t, "c", d.Consumer)
		require.False(t, d.At.IsZero())
	}
	require.Contains(t, byEntry[overflow].Reason, "SQLSTATE 22003")
	require.True(t, byEntry[overflow].Money)
	require.NotNil(t, byEntry[overflow].Event)
	require.Equal(t, metering.Credits(9223372036854775807), byEntry[overflow].Event.Awarded)
	require.Contains(t, byEntry[constraint].Reason, "SQLSTATE 23514")
	require.True(t, byEntry[constraint].Money)
	require.Equal(t, "poison", byEntry[constraint].Fields["no"])
	require.Contains(t, byEntry[malformed].Reason, "malformed event")
	require.Nil(t, byEntry[malformed].Event, "fields that do not decode")
	require.Equal(t, "lots", byEntry[malformed].Fields["c"])
	require.False(t, byEntry[malformed].Money)
	require.Contains(t, byEntry[badID].Reason, "event id")
	require.Equal(t, "x\x00y", byEntry[badID].Fields["id"], "the fields are kept as written")
	require.Equal(t, 2, logs.FilterMessage("balance change dead-lettered: Redis has it, the Postgres ledger does not; record it by hand").
		FilterLevelExact(zap.ErrorLevel).Len(), "a lost balance change is an error in the log")

	// Pages, newest first.
	page, next, err := w.Engine.ListDeadLetters(w.ctx, 3, "")
	require.NoError(t, err)
	require.Len(t, page, 3)
	require.NotEmpty(t, next)
	rest, last, err := w.Engine.ListDeadLetters(w.ctx, 3, next)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.Empty(t, last)
	all := append(page, rest...)
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i-1].ID, all[i].ID, "newest first, no entry twice")
	}
	_, _, err = w.Engine.ListDeadLetters(w.ctx, 3, "not-a-cursor")
	require.ErrorContains(t, err, "cursor")

	// Later traffic flows as before.
	removeTrigger()
	w.charge(t, key, cr(1))
	require.Equal(t, 1, runUntilIdle(t, r))
	w.drainAndCheck(t)
}

// TestReconcilerRetriesWhenPostgresIsUnavailable: an error that is no fault
// of the rows (here Postgres out of resources) dead-letters nothing: the
// batch stays pending and is applied once Postgres takes it.
func TestReconcilerRetriesWhenPostgresIsUnavailable(t *testing.T) {
	t.Parallel()
	w := oneStreamWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", Purchased: cr(50)})
	uid := w.view(t, "b").ID
	w.charge(t, key, cr(1))
	w.xaddAdjust(t, uid, "busy-1", 1_000_000, "no", "busy")
	w.charge(t, key, cr(1))
	remove := w.RefuseEvents(t, "NEW.note = 'busy'", "53000") // insufficient_resources
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "c"})
	entries := w.streamLen(t)
	_, err := r.RunOnce(w.ctx)
	require.ErrorContains(t, err, "SQLSTATE 53000")
	require.Equal(t, entries, w.pendingFor(t, "c"), "the batch stays pending")
	n, err := w.Engine.DeadLetterCount(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(0), n)
	remove()
	require.Equal(t, int(entries), runUntilIdle(t, r))
	require.Equal(t, int64(1), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id = 'busy-1'`))
	w.drainAndCheck(t)
}

// TestReconcilersShareGroupWithPoison: two gateways' reconcilers (two
// engines over the same stores) and a dead gateway that had read poison
// entries: the live ones claim them, dead-letter each exactly once, record
// everything else, and neither stalls.
func TestReconcilersShareGroupWithPoison(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.user(t, metering.UserSpec{Username: "b", InitialCredits: cr(10)}) // the poison's target
	uid := strconv.FormatInt(w.view(t, "b").ID, 10)
	key := w.user(t, metering.UserSpec{Username: "c", Purchased: cr(100)})
	poison := func(i int) {
		w.xadd(t, "id", fmt.Sprintf("overflow-%d", i), "k", "adjust", "t", "1772452800000", "u", uid,
			"aw", "9223372036854775807")
	}
	for i := 0; i < 6; i++ {
		w.charge(t, key, cr(1))
		poison(i)
	}
	readAsDeadConsumer(t, w, "dead") // these are now the dead gateway's
	for i := 6; i < 12; i++ {
		w.charge(t, key, cr(1))
		poison(i)
	}
	cfg := metering.ReconcilerConfig{ClaimIdle: time.Second, MaxBackoff: 200 * time.Millisecond, Interval: -1}
	cfg.Consumer = "a"
	a := newReconciler(t, w.Engine, cfg)
	cfg.Consumer = "b"
	b := newReconciler(t, w.NewEngine(t), cfg)
	require.NoError(t, a.Start(context.Background()))
	require.NoError(t, b.Start(context.Background()))
	require.Eventually(t, func() bool {
		return w.tryStreamLen() == 0 && w.tryInt(`SELECT count(*) FROM events WHERE kind = 'usage'`) == 12
	}, 60*time.Second, 20*time.Millisecond, "both reconcilers went on past the poison")
	a.Stop()
	b.Stop()
	n, err := w.Engine.DeadLetterCount(w.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(12), n, "each poison entry dead-lettered once")
	seen := map[string]bool{}
	for _, d := range w.deadLetters(t) {
		require.False(t, seen[d.Entry], "entry %s dead-lettered twice", d.Entry)
		seen[d.Entry] = true
		require.Contains(t, []string{"a", "b"}, d.Consumer)
	}
	require.Equal(t, int64(0), w.pendingFor(t, "dead")+w.pendingFor(t, "a")+w.pendingFor(t, "b"))
	w.drainAndCheck(t)
}

// TestReconcilerDeadLettersDeletedEntries: an entry deleted from the stream
// while pending (only an outside XDEL does that) is recorded as a dead
// letter without fields, not silently acknowledged.
func TestReconcilerDeadLettersDeletedEntries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", Purchased: cr(50)})
	w.charge(t, key, cr(1))
	lost := w.xadd(t, "id", "lost-1", "k", "usage")
	entries := readAsDeadConsumer(t, w, "c")
	require.NoError(t, w.Redis.XDel(w.ctx, w.Engine.Keys().Shard(0).Events(), lost).Err())
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "c"})
	require.Equal(t, entries, runUntilIdle(t, r))
	letters := w.deadLetters(t)
	require.Len(t, letters, 1)
	require.Equal(t, lost, letters[0].Entry)
	require.Contains(t, letters[0].Reason, "deleted")
	require.Empty(t, letters[0].Fields)
	w.drainAndCheck(t)
}

// TestReconcileLagGrowsWhileStalled: while no batch can be recorded, the
// lag is the age of the oldest waiting event and keeps growing, even as
// new events arrive behind it; once the ledger catches up it is zero.
func TestReconcileLagGrowsWhileStalled(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	key := w.user(t, metering.UserSpec{Username: "b", Purchased: cr(50)})
	uid := w.view(t, "b").ID
	w.xaddAdjust(t, uid, "busy-1", 1_000_000, "no", "busy")
	remove := w.RefuseEvents(t, "NEW.note = 'busy'", "53000")
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "stalled", MaxBackoff: 100 * time.Millisecond})
	require.NoError(t, r.Start(context.Background()))
	first, err := w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	var lag time.Duration
	require.Eventually(t, func() bool {
		w.Engine.Charge(w.ctx, key, cr(1), "GET /test") // new events keep arriving behind the stuck one
		lag, err = w.Engine.ReconcileLag(w.ctx)
		return err == nil && lag > first+time.Second
	}, 30*time.Second, 50*time.Millisecond, "the lag grows while the reconciler is stalled")
	h := w.Engine.CheckHealth(w.ctx, time.Second)
	require.GreaterOrEqual(t, h.ReconcileLag, lag)
	remove()
	require.Eventually(t, func() bool { return w.tryStreamLen() == 0 }, 30*time.Second, 20*time.Millisecond)
	r.Stop()
	lag, err = w.Engine.ReconcileLag(w.ctx)
	require.NoError(t, err)
	require.Equal(t, time.Duration(0), lag)
	w.drainAndCheck(t)
}
