package metering

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// In-flight tracking: a tracked charge adds its event id to the user's
// in-flight set (ShardKeys.InFlight) with a lease deadline, inside the
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
	member    string // see flightMember
	shard     int    // the shard of flightKey: a release call touches one
}

// Tracked reports whether the lease marks a request in flight.
func (l Lease) Tracked() bool { return l.member != "" }

// Release ends a tracked request's lease. It does not wait for Redis:
// the lease joins its shard's list that one queued script call takes
// whole when its pipeline is sent, so the response is not held up by a
// round trip and under load many releases share one call. If it never
// arrives (Redis down, process killed), the lease's deadline ends it
// anyway.
func (e *Engine) Release(l Lease) {
	if l.member == "" {
		return
	}
	r := e.releases[l.shard]
	r.mu.Lock()
	r.remember(l)
	r.pending = append(r.pending, l)
	start := !r.queued
	r.queued = true
	r.mu.Unlock()
	if start {
		c := getCall(releaseScript)
		c.Prepare = r.fill
		c.Failed = r.failed
		e.runner.Detach(c)
	}
}

// releaseFailed hands the leases of a release call that failed (Redis
// unreachable) to the repair queue, which sends them again until Redis
// answers: releasing twice is harmless, never releasing keeps the user
// undeletable until the leases run out.
func (e *Engine) releaseFailed(c *scriptCall) {
	if len(c.Args) == 0 {
		return // failed before it took any lease
	}
	shard := e.keys.ShardOfKey(c.Keys[0])
	leases := make([]Lease, len(c.Keys))
	for i, key := range c.Keys {
		leases[i] = Lease{flightKey: key, member: c.StringArg(i + 1), shard: shard}
	}
	e.log.Warn("releasing requests in flight failed; retrying until Redis answers",
		zap.Int("requests", len(leases)), zap.Error(c.Err))
	e.releaseLater("release in-flight requests", leases)
}

// releaseLater queues releasing leases (of one shard) in the repair queue.
func (e *Engine) releaseLater(what string, leases []Lease) {
	e.repairs.add(what, func(ctx context.Context) error {
		c := getCall(releaseScript)
		defer putCall(c)
		c.Args = append(c.Args, e.cfg.Now().UnixMilli())
		for _, l := range leases {
			c.Keys = append(c.Keys, l.flightKey)
			c.Args = append(c.Args, l.member)
		}
		return e.runner.Run(ctx, c)
	})
}

// newReleases makes one shard's release list (Engine.releases); each
// remembers its share of recentReleases.
func (e *Engine) newReleases(shards int) []*releases {
	out := make([]*releases, shards)
	for i := range out {
		r := &releases{ring: max(recentReleases/shards, 4096)}
		r.fill = func(c *scriptCall) { e.fillRelease(r, c) }
		r.failed = e.releaseFailed
		out[i] = r
	}
	return out
}

// releases collects one shard's leases to release until a call is sent.
type releases struct {
	mu      sync.Mutex
	pending []Lease
	spare   []Lease
	queued  bool // a release call waits in the runner's queue
	// recent remembers the last releases (a ring), so they can be sent
	// again after a Redis that came back without its last writes lost
	// them (replayReleases).
	recent []Lease
	next   int
	ring   int // the size recent grows to
	// fill and failed are Engine.fillRelease and releaseFailed as func
	// values, made once: a method value allocates each time it is taken.
	fill, failed func(*scriptCall)
}

// recentReleases is how many releases a gateway remembers: several
// seconds of traffic at high load, more than the writes an OS crash under
// appendfsync everysec can lose. During a Redis outage no new charge
// succeeds, so the ring keeps what was released before it.
const recentReleases = 1 << 17

func (r *releases) remember(l Lease) {
	if len(r.recent) < r.ring {
		r.recent = append(r.recent, l)
		return
	}
	r.recent[r.next] = l
	r.next = (r.next + 1) % r.ring
}

// replayReleases sends every remembered release again: after a heal
// (heal.go), a release Redis lost would leave its user "in flight", and
// undeletable, until the lease ran out. Releasing twice is harmless.
func (e *Engine) replayReleases() {
	for _, r := range e.releases {
		r.mu.Lock()
		leases := append([]Lease(nil), r.recent...)
		r.mu.Unlock()
		for i := 0; i < len(leases); i += 1000 {
			e.releaseLater("release requests again after a heal", leases[i:min(i+1000, len(leases))])
		}
	}
}

// fillRelease runs as the release call is about to be sent: it takes
// every lease released so far. Later ones queue a new call.
func (e *Engine) fillRelease(r *releases, c *scriptCall) {
	r.mu.Lock()
	batch := r.pending
	r.pending, r.spare = r.spare[:0], nil
	r.queued = false
	r.mu.Unlock()
	// Unboxed (Int, Str): no allocation per argument.
	c.Int(e.cfg.Now().UnixMilli())
	for _, l := range batch {
		c.Keys = append(c.Keys, l.flightKey)
		c.Str(l.member)
	}
	clear(batch)
	r.mu.Lock()
	if r.spare == nil {
		r.spare = batch[:0]
	}
	r.mu.Unlock()
}

// inFlightCall counts a user's live in-flight requests as of now.
func (e *Engine) inFlightCall(projectID, userID int64, now time.Time) *scriptCall {
	c := getCall(inflightCountScript)
	c.Keys = append(c.Keys, e.keys.ShardOf(projectID, userID).InFlight(userID))
	c.Args = append(c.Args, now.UnixMilli())
	return c
}
