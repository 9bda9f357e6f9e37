package caddymodule

import (
	"sync"
	"sync/atomic"
	"testing"
)

// The engine is released once: at once when nothing uses it, else when
// the last user leaves, however enter, leave and the cleanup interleave.
func TestEngineUsersReleaseOnceAfterTheLastUser(t *testing.T) {
	t.Parallel()
	idle := newEngineUsers()
	var released atomic.Int64
	<-idle.releaseWhenIdle(func() { released.Add(1) })
	if released.Load() != 1 {
		t.Fatalf("an idle engine: released %d times, want 1 at once", released.Load())
	}

	for round := range 200 {
		u := newEngineUsers()
		var n atomic.Int64
		u.enter() // a request still being served when the cleanup comes
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u.enter()
				u.leave()
			}()
		}
		done := u.releaseWhenIdle(func() { n.Add(1) })
		wg.Wait()
		if n.Load() != 0 {
			t.Fatalf("round %d: released while a request was being served", round)
		}
		u.leave()
		<-done
		if n.Load() != 1 {
			t.Fatalf("round %d: released %d times, want 1", round, n.Load())
		}
	}
}
