package metering_test

import (
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestReconcilerReadAheadStaysPendingOnFailure: a full batch makes the
// reconciler read the next one while it writes; when the write fails, both
// stay pending for this consumer (nothing acknowledged, nothing trimmed)
// and the next rounds apply every event exactly once.
func TestReconcilerReadAheadStaysPendingOnFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	someTraffic(t, w, 10)
	entries := w.streamLen(t)
	require.Greater(t, entries, int64(8))

	release := lockEvents(t, w)
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "c1", BatchSize: 4})
	runBlocked(t, w, r, "c1", 8) // the batch and the one read ahead
	require.Equal(t, entries, w.streamLen(t), "nothing trimmed")
	release()
	require.Equal(t, int64(0), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))

	require.Equal(t, int(entries), runUntilIdle(t, r))
	require.Equal(t, int64(0), w.pendingFor(t, "c1"))
	require.Equal(t, int64(10), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	requireDrained(t, w)
}

// TestRollupNamesAreTheMaximaOfTheBatch: the rollup row a batch creates is
// named like SQL's max() over its events' names (a user renamed within the
// batch, an event without a name), summed in Go but picked in Postgres.
func TestRollupNamesAreTheMaximaOfTheBatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.user(t, metering.UserSpec{Username: "b"})
	uid := strconv.FormatInt(w.view(t, "b").ID, 10)
	at := strconv.FormatInt(monday.UnixMilli(), 10)
	w.xadd(t, "id", "n-1", "k", "usage", "t", at, "u", uid, "un", "amy", "c", "1000")
	w.xadd(t, "id", "n-2", "k", "usage", "t", at, "u", uid, "un", "zed", "pn", "", "c", "2000")
	w.xadd(t, "id", "n-3", "k", "hold", "t", at, "u", uid, "rs", "0")
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "names"})
	require.Equal(t, 3, runUntilIdle(t, r))
	var name, project string
	var requests, credits int64
	require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT username, project_name, requests, credits FROM usage_daily
		WHERE user_id = $1 AND day = '2026-03-02'`, uid).Scan(&name, &project, &requests, &credits))
	require.Equal(t, "zed", name)
	require.Equal(t, "", project)
	require.Equal(t, int64(2), requests)
	require.Equal(t, int64(3000), credits)
	w.drainAndCheck(t)
}

// TestReconcilerReadsBigBatchesInChunks: a batch larger than one Redis
// read (5,000 entries) is read in chunks, new entries and, after a failed
// write, this consumer's pending ones, each chunk after the last; every
// event is recorded once.
func TestReconcilerReadsBigBatchesInChunks(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.user(t, metering.UserSpec{Username: "b"})
	uid := strconv.FormatInt(w.view(t, "b").ID, 10)
	at := strconv.FormatInt(monday.UnixMilli(), 10)
	const entries = 12_345
	_, err := w.Redis.Pipelined(w.ctx, func(p redis.Pipeliner) error {
		for i := 0; i < entries; i++ {
			p.XAdd(w.ctx, &redis.XAddArgs{Stream: w.Engine.Keys().Shard(0).Events(), Values: []any{
				"id", "big-" + strconv.Itoa(i), "k", "usage", "t", at, "u", uid, "un", "b", "c", "1"}})
		}
		return nil
	})
	require.NoError(t, err)

	release := lockEvents(t, w)
	r := w.reconciler(t, metering.ReconcilerConfig{Consumer: "big", BatchSize: 11_000})
	runBlocked(t, w, r, "big", entries) // a full batch of new entries and the rest read ahead
	release()

	n, err := r.RunOnce(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 11_000, n, "the pending entries, in chunks, up to a batch")
	require.Equal(t, entries-11_000, runUntilIdle(t, r))
	require.Equal(t, int64(entries), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'usage'`))
	require.Equal(t, int64(entries), w.pgInt(t, `SELECT requests FROM usage_daily WHERE user_id = $1`, uid))
	requireDrained(t, w)
}

// TestReconcilerRecordsAnEntryWrittenTwiceOnce: a new event whose entry is
// in the stream twice, both copies in one batch, is recorded once, with
// the first copy's content, and counted once in the balances (the fast
// path's COPY refuses the batch; the staging path drops the second copy).
func TestReconcilerRecordsAnEntryWrittenTwiceOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.user(t, metering.UserSpec{Username: "b", Purchased: cr(100)})
	uid := w.view(t, "b").ID
	w.xaddAdjust(t, uid, "twice-1", 5_000_000, "no", "first")
	w.xadd(t, "id", "twice-1", "k", "adjust", "t", strconv.FormatInt(monday.UnixMilli(), 10),
		"u", strconv.FormatInt(uid, 10), "aw", "5000000", "no", "second")
	w.xaddAdjust(t, uid, "once-1", 1_000_000)
	// Redis counted the adjustment once (xaddAdjust), so the balances
	// agree only if the ledger does too.
	w.drainAndCheck(t)
	require.Equal(t, int64(1), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id = 'twice-1' AND note = 'first'`))
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE event_id IN ('twice-1', 'once-1')`))
}
