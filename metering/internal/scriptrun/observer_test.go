package scriptrun_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// countingObserver records what a runner tells its Observer.
type countingObserver struct {
	mu      sync.Mutex
	batches []int
	scripts map[*scriptrun.Script]int
}

func (o *countingObserver) Sent(calls int, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took <= 0 {
		panic("a pipeline took no time")
	}
	o.batches = append(o.batches, calls)
}

func (o *countingObserver) Carried(s *scriptrun.Script, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.scripts[s]++
}

// The observer hears of every pipeline and of every call's script, and
// observing costs the caller no allocation: the batch is not handed over
// (a slice through an interface would move the sender's array to the heap).
// Allocations are measured without the race detector only.
func TestObserver(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	o := &countingObserver{scripts: map[*scriptrun.Script]int{}}
	r := newRunner(t, rdb, 2*time.Second)
	r.SetObserver(o)

	calls := []*scriptrun.Call{echoCall(echo, 1, 1), echoCall(echo2, 1, 2), echoCall(echo, 1, 3)}
	if err := r.RunAll(ctx, calls); err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		checkEcho(t, c, 1, i+1)
		scriptrun.Put(c)
	}
	o.mu.Lock()
	if len(o.batches) != 1 || o.batches[0] != 3 || o.scripts[echo] != 2 || o.scripts[echo2] != 1 {
		t.Errorf("observed batches %v and scripts %v; want one batch of 3: echo twice, echo2 once", o.batches, o.scripts)
	}
	o.mu.Unlock()

	if raceDetector {
		t.Log("allocations not measured: the race detector makes sync.Pool drop items at random")
		return
	}
	// Escape analysis is per function, not per branch: once the batch
	// escapes, every send allocates its array (MaxBatch pointers), with or
	// without an observer. So the bound is absolute: a call allocates
	// less than that array.
	run := func() {
		c := scriptrun.Get(echo)
		c.Keys = append(c.Keys, "observer-allocs")
		c.Args = append(c.Args, 1, 1)
		if err := r.Run(ctx, c); err != nil {
			t.Error(err)
		}
		scriptrun.Put(c)
	}
	run()
	const runs = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		run()
	}
	runtime.ReadMemStats(&after)
	array := uint64(scriptrun.MaxBatch) * uint64(unsafe.Sizeof((*scriptrun.Call)(nil)))
	if perCall := (after.TotalAlloc - before.TotalAlloc) / runs; perCall >= array {
		t.Errorf("an observed call allocates %d bytes, as much as the batch array (%d): did the batch escape?", perCall, array)
	}
}

func TestNamedScripts(t *testing.T) {
	a := scriptrun.NewNamedScript("observer_test_a", "return 1")
	if a.Name() != "observer_test_a" || scriptrun.NamedScripts()[a.ID()] != a {
		t.Fatalf("named script %q has id %d", a.Name(), a.ID())
	}
	if echo.ID() != -1 || echo.Name() != "" {
		t.Errorf("an unnamed script has id %d, name %q", echo.ID(), echo.Name())
	}
	defer func() {
		if recover() == nil {
			t.Error("a second script of the same name was made")
		}
	}()
	scriptrun.NewNamedScript("observer_test_a", "return 2")
}
