package metering

import (
	"context"
	"sync"
)

// background is the start/stop lifecycle of one goroutine, shared by the
// Reconciler and the Sweeper. Caddy stops the old app and starts the new one
// on every config reload, from goroutines of its own, so the lifecycle must
// hold whatever order the calls come in:
//   - start runs the loop unless one is running; after stop (or after the
//     loop returned on its own, its context ended) it runs a new one;
//   - stop cancels the loop and returns only once it has returned, so
//     nothing of it runs afterwards; it is a no-op before start or after
//     another stop, and concurrent stops all wait for the loop.
//
// The zero value is ready to use.
type background struct {
	// mu is held by stop while it waits, so a start or stop that comes
	// meanwhile waits too: a second stop cannot return while the loop
	// still runs, and a start after stop never meets a loop on its way out.
	// The loop never takes mu.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has returned
}

// start runs loop in a new goroutine with a context that stop cancels (and
// that ends with ctx), unless a loop is running. It reports whether it
// started one.
func (b *background) start(ctx context.Context, loop func(context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done != nil {
		select {
		case <-b.done: // returned on its own: run a new one
			b.cancel()
		default:
			return false
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	b.cancel, b.done = cancel, done
	go func() {
		defer close(done)
		loop(ctx)
	}()
	return true
}

// stop cancels the loop and waits until it has returned.
func (b *background) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		return
	}
	b.cancel()
	<-b.done
	b.cancel, b.done = nil, nil
}

// running reports whether a loop is running (for tests).
func (b *background) running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}
