package caddymodule

import (
	"sync"
	"sync/atomic"
)

// engineUsers counts what still uses one configuration's engine: requests
// its handlers serve and settlements finishing behind their responses.
//
// On a reload Caddy starts the new configuration, stops the old one's
// servers without waiting for their requests (their shutdown goes on in
// the background) and cleans up the old modules at once. Closing the old
// engine then would fail the settlements of its streams still running (the
// sweeper would charge their estimates instead of their usage) and the
// releases of its fixed-cost requests (the user's in-flight count would
// stay up until their lease ran out). So the app's Cleanup hands the
// closing to the last user to leave, or does it at once when none is left.
type engineUsers struct {
	n       atomic.Int64
	closing atomic.Bool
	once    sync.Once
	release func()        // set once, before closing
	done    chan struct{} // closed once release has run
}

func newEngineUsers() *engineUsers { return &engineUsers{done: make(chan struct{})} }

// enter counts a user in. One that enters after the engine was released
// finds it closed, and fails closed (503) like any unavailable engine. A
// nil count (a handler given its engine directly, in tests) counts nothing.
func (u *engineUsers) enter() {
	if u != nil {
		u.n.Add(1)
	}
}

// leave counts a user out, and releases the engine if it was the last one
// of a configuration that was cleaned up.
func (u *engineUsers) leave() {
	if u != nil && u.n.Add(-1) == 0 && u.closing.Load() {
		u.releaseNow()
	}
}

// releaseWhenIdle runs release now if nothing uses the engine, else when
// the last user leaves; the channel is closed once it has run.
func (u *engineUsers) releaseWhenIdle(release func()) <-chan struct{} {
	u.release = release
	u.closing.Store(true)
	if u.n.Load() == 0 {
		u.releaseNow()
	}
	return u.done
}

// releaseNow runs release (once), whoever still uses the engine.
func (u *engineUsers) releaseNow() {
	u.once.Do(func() {
		u.release()
		close(u.done)
	})
}
