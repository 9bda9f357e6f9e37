package scriptrun_test

import (
	"context"
	"sync"
	"testing"
	"time"

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

	plain := newRunner(t, rdb, 2*time.Second)
	run := func(r *scriptrun.Runner) func() {
		return func() {
			c := scriptrun.Get(echo)
			c.Keys = append(c.Keys, "observer-allocs")
			c.Args = append(c.Args, 1, 1)
			if err := r.Run(ctx, c); err != nil {
				t.Fatal(err)
			}
			scriptrun.Put(c)
		}
	}
	without := testing.AllocsPerRun(200, run(plain))
	with := testing.AllocsPerRun(200, run(r))
	if with > without {
		t.Errorf("a call allocates %.1f times observed, %.1f not", with, without)
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
