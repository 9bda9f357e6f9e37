package metering

import (
	"context"
	"time"
)

// Health is the state of the engine's dependencies.
type Health struct {
	Redis        error
	Postgres     error
	ReconcileLag time.Duration
}

// OK reports whether both stores answered.
func (h Health) OK() bool { return h.Redis == nil && h.Postgres == nil }

// CheckHealth pings Redis and Postgres and measures the reconcile lag,
// each bounded by timeout.
func (e *Engine) CheckHealth(ctx context.Context, timeout time.Duration) Health {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var h Health
	h.Redis = e.rdb.Ping(ctx).Err()
	h.Postgres = e.db.Ping(ctx)
	if h.Redis == nil {
		h.ReconcileLag, h.Redis = e.ReconcileLag(ctx)
	}
	return h
}
