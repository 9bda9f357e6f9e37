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
	// (ReconcileLag); DeadLetters the number of dead letters. Both are
	// read from Redis, and zero when it does not answer.
	ReconcileLag time.Duration
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
		h.ReconcileLag, h.DeadLetters, h.Redis = e.backlog(ctx)
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
	lag, _, err := e.backlog(ctx)
	return lag, err
}

// backlog reads the reconcile lag and the dead-letter count in one round trip.
func (e *Engine) backlog(ctx context.Context) (time.Duration, int64, error) {
	var first *redis.XMessageSliceCmd
	var now *redis.TimeCmd
	var dead *redis.IntCmd
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		first = p.XRangeN(ctx, e.keys.Events(), "-", "+", 1)
		now = p.Time(ctx)
		dead = p.XLen(ctx, e.keys.DeadLetters())
		return nil
	})
	if err != nil {
		return 0, 0, unavailable(err)
	}
	if len(first.Val()) == 0 {
		return 0, dead.Val(), nil
	}
	id := first.Val()[0].ID
	at := streamTime(id)
	if at.IsZero() {
		return 0, 0, fmt.Errorf("stream id %q is not a time", id)
	}
	return max(now.Val().Sub(at), 0), dead.Val(), nil
}
