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

// backlog reads the reconcile lag, the stream's length and the dead-letter
// count in one round trip.
func (e *Engine) backlog(ctx context.Context) (backlogState, error) {
	var first *redis.XMessageSliceCmd
	var now *redis.TimeCmd
	var events, dead *redis.IntCmd
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		first = p.XRangeN(ctx, e.keys.Events(), "-", "+", 1)
		now = p.Time(ctx)
		events = p.XLen(ctx, e.keys.Events())
		dead = p.XLen(ctx, e.keys.DeadLetters())
		return nil
	})
	if err != nil {
		return backlogState{}, unavailable(err)
	}
	b := backlogState{events: events.Val(), deadLetters: dead.Val()}
	if len(first.Val()) == 0 {
		return b, nil
	}
	id := first.Val()[0].ID
	at := streamTime(id)
	if at.IsZero() {
		return backlogState{}, fmt.Errorf("stream id %q is not a time", id)
	}
	b.lag = max(now.Val().Sub(at), 0)
	return b, nil
}
