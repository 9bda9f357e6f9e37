package metering

import "time"

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

// Release ends a tracked request's lease. It does not wait for Redis: the
// call is queued and rides in the next pipeline, so the response is not
// held up by a round trip. If it never arrives (Redis down, process
// killed), the lease's deadline ends it anyway.
func (e *Engine) Release(l Lease) {
	if l.id == "" {
		return
	}
	c := getCall(releaseScript)
	c.keys = append(c.keys, l.flightKey)
	c.args = append(c.args, l.id, e.cfg.Now().UnixMilli())
	e.runner.detach(c)
}

// inFlightCall counts a user's live in-flight requests as of now.
func (e *Engine) inFlightCall(userID int64, now time.Time) *scriptCall {
	c := getCall(inflightCountScript)
	c.keys = append(c.keys, e.keys.InFlight(userID))
	c.args = append(c.args, now.UnixMilli())
	return c
}
