package metering

import (
	"sync"
	"time"
)

// In-flight tracking: a tracked charge adds its event id to the user's
// in-flight set (RedisKeys.InFlight) with a lease deadline, inside the
// charge script; Release removes it after the response. Deleting a user
// refuses while a member's deadline is ahead. A gateway that dies
// mid-request leaves a member that simply stops counting at its deadline.

var (
	releaseScript       = mustScript("release.lua")
	inflightCountScript = mustScript("inflight_count.lua")
)

// Lease identifies a tracked request in flight. The zero Lease tracks
// nothing and releasing it is a no-op.
type Lease struct {
	flightKey string
	id        string
}

// Tracked reports whether the lease marks a request in flight.
func (l Lease) Tracked() bool { return l.id != "" }

// Release ends a tracked request's lease. It does not wait for Redis:
// the lease joins a list that one queued script call takes whole when its
// pipeline is sent, so the response is not held up by a round trip and
// under load many releases share one call. If it never arrives (Redis
// down, process killed), the lease's deadline ends it anyway.
func (e *Engine) Release(l Lease) {
	if l.id == "" {
		return
	}
	r := &e.releases
	r.mu.Lock()
	r.pending = append(r.pending, l)
	start := !r.queued
	r.queued = true
	r.mu.Unlock()
	if start {
		c := getCall(releaseScript)
		c.prepare = e.fillRelease
		e.runner.detach(c)
	}
}

// releases collects leases to release until a call is sent.
type releases struct {
	mu      sync.Mutex
	pending []Lease
	spare   []Lease
	queued  bool // a release call waits in the runner's queue
}

// fillRelease runs as the release call is about to be sent: it takes
// every lease released so far. Later ones queue a new call.
func (e *Engine) fillRelease(c *scriptCall) {
	r := &e.releases
	r.mu.Lock()
	batch := r.pending
	r.pending, r.spare = r.spare[:0], nil
	r.queued = false
	r.mu.Unlock()
	c.args = append(c.args, e.cfg.Now().UnixMilli())
	for _, l := range batch {
		c.keys = append(c.keys, l.flightKey)
		c.args = append(c.args, l.id)
	}
	clear(batch)
	r.mu.Lock()
	if r.spare == nil {
		r.spare = batch[:0]
	}
	r.mu.Unlock()
}

// inFlightCall counts a user's live in-flight requests as of now.
func (e *Engine) inFlightCall(userID int64, now time.Time) *scriptCall {
	c := getCall(inflightCountScript)
	c.keys = append(c.keys, e.keys.InFlight(userID))
	c.args = append(c.args, now.UnixMilli())
	return c
}
