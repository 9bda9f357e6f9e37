package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Health is the state of the engine's dependencies.
type Health struct {
	Redis    error
	Postgres error
	// ReconcileLag is the age of the oldest event not yet in Postgres
	// (ReconcileLag); Backlog the number of events in the stream, which
	// holds only those not yet in Postgres (reconciled ones are trimmed);
	// DeadLetters the number of dead letters. All are read from Redis,
	// and zero when it does not answer.
	ReconcileLag time.Duration
	Backlog      int64
	DeadLetters  int64
}

// OK reports whether both stores answered.
func (h Health) OK() bool { return h.Redis == nil && h.Postgres == nil }

// CheckHealth pings Redis and Postgres and reads the reconcile lag and the
// dead-letter count, each bounded by timeout.
func (e *Engine) CheckHealth(ctx context.Context, timeout time.Duration) Health {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var h Health
	h.Redis = e.rdb.Ping(ctx).Err()
	h.Postgres = e.db.Ping(ctx)
	if h.Redis == nil {
		var b backlogState
		b, h.Redis = e.backlog(ctx)
		h.ReconcileLag, h.Backlog, h.DeadLetters = b.lag, b.events, b.deadLetters
	}
	return h
}

// ReconcileLag is the age of the oldest event not yet in Postgres: zero
// when the stream is drained. Reconciled entries are trimmed (ack.lua) and
// dead letters leave the stream, so the stream's first entry is the oldest
// one waiting, whether no reconciler runs, all are stalled, or one holds
// it while others go on. The age is measured on Redis's clock, which
// stamped the entry id: the gateway's own clock may differ (another host,
// another container), and a gateway whose clock is behind Redis's would
// report a stalled ledger as barely late, one ahead a healthy one as
// stalled.
func (e *Engine) ReconcileLag(ctx context.Context) (time.Duration, error) {
	b, err := e.backlog(ctx)
	return b.lag, err
}

// backlogState is what the stream holds for the ledger.
type backlogState struct {
	lag         time.Duration
	events      int64
	deadLetters int64
}

// backlog reads the reconcile lag (of the shard that lags most), the
// streams' lengths and the dead-letter counts in one pipeline.
func (e *Engine) backlog(ctx context.Context) (backlogState, error) {
	shards := e.keys.Shards()
	first := make([]*redis.XMessageSliceCmd, len(shards))
	now := make([]*redis.TimeCmd, len(shards))
	events := make([]*redis.IntCmd, len(shards))
	dead := make([]*redis.IntCmd, len(shards))
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range shards {
			first[i] = p.XRangeN(ctx, shards[i].Events(), "-", "+", 1)
			// TIME is routed by no key: in a Redis Cluster it goes to any
			// node. Clocks of one deployment's servers agree closely.
			now[i] = p.Time(ctx)
			events[i] = p.XLen(ctx, shards[i].Events())
			dead[i] = p.XLen(ctx, shards[i].DeadLetters())
		}
		return nil
	})
	if err != nil {
		return backlogState{}, unavailable(err)
	}
	var b backlogState
	for i := range shards {
		b.events += events[i].Val()
		b.deadLetters += dead[i].Val()
		if len(first[i].Val()) == 0 {
			continue
		}
		id := first[i].Val()[0].ID
		at := streamTime(id)
		if at.IsZero() {
			return backlogState{}, fmt.Errorf("stream id %q is not a time", id)
		}
		b.lag = max(b.lag, now[i].Val().Sub(at))
	}
	return b, nil
}
