package metering

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// probe is a loop that records how many of it run and have returned.
type probe struct {
	started, live, maxLive, returned atomic.Int64
	release                          chan struct{} // if set, the loop waits for it after its context ends
}

func (p *probe) loop(ctx context.Context) {
	p.started.Add(1)
	n := p.live.Add(1)
	for m := p.maxLive.Load(); n > m && !p.maxLive.CompareAndSwap(m, n); m = p.maxLive.Load() {
	}
	<-ctx.Done()
	if p.release != nil {
		<-p.release
	}
	p.live.Add(-1)
	p.returned.Add(1)
}

func TestBackgroundStartStop(t *testing.T) {
	t.Parallel()
	var b background
	var p probe
	b.stop() // before start: nothing to stop
	require.False(t, b.running())

	require.True(t, b.start(context.Background(), p.loop))
	require.False(t, b.start(context.Background(), p.loop), "a running loop is not started twice")
	require.True(t, b.running())
	b.stop()
	require.Equal(t, int64(1), p.returned.Load(), "stop returns after the loop has")
	require.False(t, b.running())
	b.stop() // idempotent

	require.True(t, b.start(context.Background(), p.loop), "start after stop runs the loop again")
	require.True(t, b.running())
	b.stop()
	require.Equal(t, int64(2), p.started.Load())
	require.Equal(t, int64(2), p.returned.Load())
	require.Equal(t, int64(1), p.maxLive.Load())
}

// TestBackgroundLoopEndsWithItsContext: a loop whose context ended has
// returned on its own; start runs a new one, stop still works.
func TestBackgroundLoopEndsWithItsContext(t *testing.T) {
	t.Parallel()
	var b background
	var p probe
	ctx, cancel := context.WithCancel(context.Background())
	require.True(t, b.start(ctx, p.loop))
	cancel()
	for b.running() {
		// the loop returns once it sees its context end
		waitBriefly()
	}
	require.True(t, b.start(context.Background(), p.loop))
	require.True(t, b.running())
	b.stop()
	require.Equal(t, int64(2), p.returned.Load())
	require.Zero(t, p.live.Load())
}

// TestBackgroundConcurrentStopsWait: every one of several concurrent stops
// returns only after the loop has, even while the loop is slow to end.
func TestBackgroundConcurrentStopsWait(t *testing.T) {
	t.Parallel()
	var b background
	p := probe{release: make(chan struct{})}
	require.True(t, b.start(context.Background(), p.loop))
	var wg sync.WaitGroup
	returnedAtStop := make([]int64, 4)
	for i := range returnedAtStop {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.stop()
			returnedAtStop[i] = p.returned.Load()
		}()
	}
	waitBriefly() // give the stops time to pile up (the outcome does not depend on it)
	close(p.release)
	wg.Wait()
	require.Equal(t, []int64{1, 1, 1, 1}, returnedAtStop)
}

// TestBackgroundRacingStartsAndStops: starts and stops from many
// goroutines never run two loops at once, and a final stop leaves none.
func TestBackgroundRacingStartsAndStops(t *testing.T) {
	t.Parallel()
	var b background
	var p probe
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if (i+g)%2 == 0 {
					b.start(context.Background(), p.loop)
				} else {
					b.stop()
				}
			}
		}()
	}
	wg.Wait()
	b.stop()
	require.False(t, b.running())
	require.Equal(t, int64(1), p.maxLive.Load(), "never two loops at once")
	require.Zero(t, p.live.Load())
	require.Equal(t, p.started.Load(), p.returned.Load())
}

// waitBriefly yields to the other goroutines for a moment; no outcome
// depends on how long.
func waitBriefly() { time.Sleep(time.Millisecond) }
