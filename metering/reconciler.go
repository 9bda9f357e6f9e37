package metering

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ReconcilerConfig configures the reconciler.
type ReconcilerConfig struct {
	// Group is the stream consumer group. Default "reconciler".
	Group string
	// Consumer names this reconciler in the group. Keep it stable across
	// restarts so a restarted process re-reads its own pending entries
	// first. Default: the host name.
	Consumer string
	// BatchSize is the most events written in one transaction. Default
	// 20000. (A packed entry's events go in one batch: one entry with
	// more than BatchSize events is a batch of its own.) Each
	// transaction costs a commit and updates every user, pool and rollup
	// row its events touch once, so larger batches drain a backlog
	// faster (docs/benchmarks.md); Redis is read and acknowledged in
	// chunks of at most readChunk entries whatever the size.
	BatchSize int
	// Block is how long one read waits for new events. Default 1s.
	Block time.Duration
	// ClaimIdle is how long another consumer's unacknowledged entries wait
	// before this one takes them over (a dead gateway's). Default 30s.
	ClaimIdle time.Duration
	// MaxBackoff caps the wait between retries while Postgres or Redis is
	// down. Default 10s.
	MaxBackoff time.Duration
	// Interval is how long the loop lets events accumulate after it has
	// caught up, before writing the next batch; a full batch waiting is
	// written at once. Each batch costs a Postgres transaction (with a WAL
	// flush) and several Redis round trips whatever its size, so at a
	// moderate request rate writing every few milliseconds would spend
	// most of its work on overhead, on the cores that serve requests.
	// It bounds the usual reconcile lag. Default 200ms; negative: none.
	Interval time.Duration
}

// WithDefaults fills in zero fields.
func (c ReconcilerConfig) WithDefaults() ReconcilerConfig {
	if c.Group == "" {
		c.Group = "reconciler"
	}
	if c.Consumer == "" {
		c.Consumer, _ = os.Hostname()
		if c.Consumer == "" {
			c.Consumer = "tollgate"
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 20000
	}
	if c.Block == 0 {
		c.Block = time.Second
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = 30 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = 200 * time.Millisecond
	}
	return c
}

func (c ReconcilerConfig) validate() error {
	switch {
	case c.BatchSize < 1:
		return errors.New("reconciler: BatchSize must be positive")
	case c.Block < time.Millisecond:
		return errors.New("reconciler: Block must be at least 1ms")
	case c.ClaimIdle < time.Second:
		return errors.New("reconciler: ClaimIdle must be at least 1s")
	}
	return nil
}

// Reconciler moves events from the Redis streams into the Postgres ledger,
// one shardReconciler per shard's stream, each in a loop of its own.
type Reconciler struct {
	parts []*shardReconciler
	bg    background
}

// shardReconciler moves one shard's events: read with a consumer group,
// apply a batch in one transaction (idempotent by event id, balances
// updated alongside), then XACK and delete. A crash anywhere leaves
// entries pending; they are read again and applied at most once more,
// which the unique event id turns into a no-op.
type shardReconciler struct {
	e     *Engine
	shard *ShardKeys
	cfg   ReconcilerConfig
	log   *zap.Logger
	// ahead is the read of the next batch, started while the current one
	// is written (readAhead); nil when none is under way.
	ahead chan readResult
	// claimedAt is when claim last looked for abandoned entries and found
	// none (zero: look). Only the loop's goroutine or the read ahead it
	// waits for touch it, as perEntry.
	claimedAt time.Time
	// perEntry is how many events an entry held on average in the last
	// read, which sizes the next one (readBatch); 0 before the first.
	perEntry int
}

// readResult is a batch read ahead, decoded, or why it could not be.
type readResult struct {
	b   *batch
	err error
}

// NewReconciler builds a reconciler for the engine's streams.
func (e *Engine) NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Reconciler{}
	for i := range e.keys.Shards() {
		log := e.log.Named("reconciler")
		if len(e.keys.Shards()) > 1 {
			log = log.With(zap.Int("shard", i))
		}
		r.parts = append(r.parts, &shardReconciler{e: e, shard: e.keys.Shard(i), cfg: cfg, log: log})
	}
	return r, nil
}

// Start runs the loops in the background until Stop. They outlive ctx
// (they keep only its values): Stop ends them. Starting a running
// reconciler does nothing; Start after Stop runs it again (background.go).
func (r *Reconciler) Start(ctx context.Context) error {
	r.bg.start(context.WithoutCancel(ctx), r.loop)
	return nil
}

// Stop ends the loops and waits for them; the current batches finish or
// are left pending for the next run. Idempotent, a no-op before Start,
// and safe to call concurrently: every call returns once the loops have.
func (r *Reconciler) Stop() { r.bg.stop() }

// loop runs every shard's loop until ctx ends.
func (r *Reconciler) loop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range r.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx)
		}()
	}
	wg.Wait()
}

// RunOnce applies one batch of every shard (see shardReconciler.RunOnce)
// and returns how many events it handled in all. A shard that fails does
// not keep the others from their batch; the first failure is returned.
func (r *Reconciler) RunOnce(ctx context.Context) (int, error) {
	total := 0
	var first error
	for _, p := range r.parts {
		n, err := p.RunOnce(ctx)
		total += n
		if first == nil {
			first = err
		}
	}
	return total, first
}

func (r *shardReconciler) loop(ctx context.Context) {
	// A read still under way must end before the loop does: Stop promises
	// that nothing of the reconciler runs any more.
	defer r.dropAhead()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		n, full, err := r.round(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			if n > 0 && !full && r.cfg.Interval > 0 {
				// Caught up: let the next batch accumulate.
				select {
				case <-ctx.Done():
					return
				case <-time.After(r.cfg.Interval - time.Since(started)):
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("reconcile failed; events stay in the stream and will be retried",
			zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, r.cfg.MaxBackoff)
	}
}

// RunOnce applies one batch: this consumer's pending entries first, then
// entries abandoned by other consumers, then new ones (waiting up to Block).
// It returns how many events it handled (recorded or dead-lettered; an
// entry dead-lettered whole counts as one). After a full batch a read of
// the next one is left under way (see readAhead), which the next call
// takes; its entries are pending for this consumer until they are recorded.
func (r *shardReconciler) RunOnce(ctx context.Context) (int, error) {
	n, _, err := r.round(ctx)
	return n, err
}

// count adds a round's outcome to the engine's metrics; a round cut short
// because the reconciler is stopping is no failure.
func (r *shardReconciler) count(ctx context.Context, handled int, err error) {
	switch {
	case err == nil:
		r.e.cfg.Metrics.add(ReconciledEvents, int64(handled))
	case ctx.Err() == nil:
		r.e.cfg.Metrics.add(ReconcileFailures, 1)
	}
}

// round is RunOnce, also saying whether the batch was full.
func (r *shardReconciler) round(ctx context.Context) (handled int, full bool, err error) {
	defer func() { r.count(ctx, handled, err) }()
	if r.e.cfg.Fence.Blocked() {
		// Redis restarted and is being verified (heal.go): nothing may
		// move between it and the ledger until then.
		r.dropAhead()
		return 0, false, r.e.VerifyRedis(ctx)
	}
	b, err := r.takeAhead()
	if err == nil && b == nil {
		b, err = r.next(ctx)
	}
	if err != nil || b == nil {
		return 0, false, err
	}
	if b.full {
		// A full batch: more is probably waiting. Read it while this one
		// is written (Redis and Postgres work in parallel); it is
		// acknowledged only after its own commit, like every batch.
		r.readAhead(ctx, b)
	}
	if err := r.apply(ctx, b); err != nil {
		// What was read ahead stays pending for this consumer: the next
		// round reads it again, after the failed batch, from "0".
		r.dropAhead()
		return 0, false, err
	}
	return b.handled, b.full, nil
}

// readAhead starts reading the batch after cur, the one being written:
// the entries read with cur that did not fit in it (this consumer's
// pending entries after cur's last, then new ones), or else entries
// abandoned by other consumers, then new ones, without waiting for any;
// decoded there too, so that only Postgres's work is on the loop's path.
// Not this consumer's pending entries from "0": cur is among them.
func (r *shardReconciler) readAhead(ctx context.Context, cur *batch) {
	ch := make(chan readResult, 1)
	r.ahead = ch
	go func() {
		if cur.left {
			entries, st, err := r.readBatch(ctx, cur.last, -1, true)
			ch <- readResult{r.decode(entries, st), unavailable(err)}
			return
		}
		entries, st, err := r.claim(ctx)
		if err == nil && len(entries) == 0 {
			entries, st, err = r.readBatch(ctx, ">", -1, false)
		}
		ch <- readResult{r.decode(entries, st), unavailable(err)}
	}()
}

// takeAhead waits for the batch read ahead, if one was started; nil when
// none was or it found nothing.
func (r *shardReconciler) takeAhead() (*batch, error) {
	if r.ahead == nil {
		return nil, nil
	}
	res := <-r.ahead
	r.ahead = nil
	return res.b, res.err
}

// dropAhead waits for a read under way and forgets its batch, which stays
// pending for this consumer and is read again from "0".
func (r *shardReconciler) dropAhead() { _, _ = r.takeAhead() }

// next reads the round's batch (nil: nothing to do).
func (r *shardReconciler) next(ctx context.Context) (*batch, error) {
	if err := r.ensureGroup(ctx); err != nil {
		return nil, err
	}
	entries, st, err := r.readBatch(ctx, "0", -1, false)
	if err == nil && len(entries) == 0 {
		entries, st, err = r.claim(ctx)
	}
	// Wait for new entries in short slices: a blocked XREADGROUP does not
	// notice a cancelled context, and Stop should not wait out a long Block.
	for wait := r.cfg.Block; err == nil && len(entries) == 0 && wait > 0 && ctx.Err() == nil; wait -= blockSlice {
		entries, st, err = r.readBatch(ctx, ">", min(wait, blockSlice), false)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return r.decode(entries, st), nil
}

const blockSlice = 100 * time.Millisecond

// claim takes over entries other consumers left pending for ClaimIdle.
// Claims are rare (a gateway died), so go-redis decodes them.
//
// Looking is not cheap: XAUTOCLAIM walks the group's pending list from
// its start, up to ten entries per entry it may claim, and this
// consumer's batch being written is on that list. Every round it cost
// Redis ~36 ms per batch of 20,000 (as much as reading the batch;
// docs/benchmarks.md), all in one command that every request waits out.
// An entry only becomes claimable after ClaimIdle, so after a look that
// found nothing the next waits claimEvery: abandoned entries are taken
// over at most that much later than ClaimIdle.
//
// Claimed entries are this consumer's pending ones: those that do not fit
// in the batch are read first by the next (readBatch).
func (r *shardReconciler) claim(ctx context.Context) ([]streamEntry, readState, error) {
	if !r.claimedAt.IsZero() && time.Since(r.claimedAt) < r.claimEvery() {
		return nil, readState{}, nil
	}
	msgs, _, err := r.e.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: r.shard.Events(), Group: r.cfg.Group,
		Consumer: r.cfg.Consumer, MinIdle: r.cfg.ClaimIdle, Start: "0-0", Count: int64(r.chunkFor(r.cfg.BatchSize))}).Result()
	if err == nil && len(msgs) == 0 {
		r.claimedAt = time.Now()
	} else {
		r.claimedAt = time.Time{} // more may be waiting, or the look failed
	}
	if err != nil {
		return nil, readState{}, err
	}
	entries, _, st := r.fit(entriesOf(msgs), r.cfg.BatchSize, true)
	return entries, st, nil
}

// claimEvery is the least time between two looks for abandoned entries
// that find none: half of ClaimIdle, at most 5 s.
func (r *shardReconciler) claimEvery() time.Duration { return min(r.cfg.ClaimIdle/2, 5*time.Second) }

func (r *shardReconciler) ensureGroup(ctx context.Context) error {
	err := r.e.rdb.XGroupCreateMkStream(ctx, r.shard.Events(), r.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return unavailable(err)
	}
	return nil
}

// apply records a batch: the events Postgres takes go to the ledger, the
// entries it never can (malformed, or refused for what they contain) to
// the dead-letter stream; then every entry handled is acknowledged. An
// error (Postgres or Redis unavailable) leaves the batch pending, to be
// applied again, which the event ids make harmless.
func (r *shardReconciler) apply(ctx context.Context, b *batch) error {
	refused, seq, err := r.store(ctx, b.sources, b.events)
	if err != nil {
		return fmt.Errorf("write %d events to postgres: %w", len(b.events), err)
	}
	letters := append(b.letters, refused...)
	// Every event numbered up to seq in the ledger (the sequence's value
	// when the batch was written) was made by a script that had run before
	// its number was drawn: Redis reflects them all. Raised in Redis after
	// the batch, it is where a heal starts from.
	// Dead letters are acknowledged as they are moved; one another
	// consumer claimed meanwhile is neither moved nor acknowledged here.
	if err := r.deadLetter(ctx, letters); err != nil {
		return err
	}
	if err := r.ack(ctx, acksAfter(b.entries, letters)); err != nil {
		return err
	}
	return unavailable(raiseCheckpoint(ctx, r.e.rdb, r.shard, seq))
}

// acksAfter is the entries to acknowledge once letters are moved: not
// those of a packed entry's events dead-lettered alone, which
// deadletter.lua acknowledged with their letters; or, when another
// consumer claimed the entry meanwhile, left to that consumer, which
// records its events again (a no-op) and moves the letters itself. (An
// XACK names no consumer: acknowledging it here would take it from the
// other's pending list, its letters never moved.)
func acksAfter(entries []string, letters []letter) []string {
	var lettered map[string]bool
	for _, l := range letters {
		if l.index != wholeEntry {
			if lettered == nil {
				lettered = map[string]bool{}
			}
			lettered[l.id] = true
		}
	}
	if lettered == nil {
		return entries
	}
	out := make([]string, 0, len(entries))
	for _, id := range entries {
		if !lettered[id] {
			out = append(out, id)
		}
	}
	return out
}

// store writes events (their entry ids alongside, their texts made
// storable: decode, storableTexts) to Postgres and returns
// the ledger sequence's value it read with them (0 when nothing was
// written). A batch refused for a data reason is split in halves, each in
// its own transaction, until the refused events stand alone: they are
// returned, the others are recorded. A batch of n entries with k refused
// costs about 2k·log2(n) extra transactions, once. Any other error is
// returned: the batch stays pending and is retried.
func (r *shardReconciler) store(ctx context.Context, sources []eventSource, events []Event) ([]letter, int64, error) {
	if len(events) == 0 {
		return nil, 0, nil
	}
	var seq int64
	err := pgx.BeginFunc(ctx, r.e.db, func(tx pgx.Tx) (err error) {
		_, seq, err = applyStorableEvents(ctx, tx, events)
		return err
	})
	if err == nil || !isDataError(err) {
		return nil, seq, err
	}
	if len(events) == 1 {
		e := &events[0]
		money := e.Allowance != 0 || e.Pool != 0 || e.Awarded != 0 || e.Purchased != 0 || e.PoolUsed != 0
		return []letter{{id: sources[0].entry, index: sources[0].index, reason: "refused by Postgres: " + err.Error(),
			event: e.ID, money: money}}, 0, nil
	}
	mid := len(events) / 2
	first, seq1, err := r.store(ctx, sources[:mid], events[:mid])
	if err != nil {
		return nil, 0, err
	}
	second, seq2, err := r.store(ctx, sources[mid:], events[mid:])
	return append(first, second...), max(seq1, seq2), err
}

// ack acknowledges entries now in Postgres (or dead-lettered) and trims
// every entry that is done, so the stream's memory stays bounded and its
// first entry is always the oldest unreconciled event. The XACKs go in one
// pipeline, in commands of readChunk ids (Redis serves other clients
// between them); then ack.lua trims, in one script so that no other
// consumer's read can fall between its pending check and the trim. (The
// ids used to go through the script, in calls of readChunk: the Lua layer
// made acknowledging ~14 % of a batch's time, docs/benchmarks.md.) Called
// with no ids it only trims (after a batch of dead letters, which
// deadletter.lua acknowledges).
func (r *shardReconciler) ack(ctx context.Context, ids []string) error {
	stream := r.shard.Events()
	if len(ids) > 0 {
		_, err := r.e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for len(ids) > 0 {
				n := min(len(ids), readChunk)
				p.XAck(ctx, stream, r.cfg.Group, ids[:n]...)
				ids = ids[n:]
			}
			return nil
		})
		if err != nil {
			return unavailable(err)
		}
	}
	return unavailable(ackScript.Run(ctx, r.e.rdb, []string{stream}, r.cfg.Group).Err())
}
