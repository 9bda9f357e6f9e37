package metering

import (
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// Metrics counts what engines do, for an exporter to read when it is
// scraped (the gateway's Prometheus collector, caddymodule/metrics*.go).
// Counting is an atomic add: no lock, no allocation, no label lookup.
// Nothing here names a user, a key or a project, so every figure is one
// number per gateway however many users there are.
//
// One Metrics may serve several engines (Config.Metrics): a config
// reload's new engine and the reconciler's keep adding to the counts the
// old one made, so counters do not restart with each reload. An engine
// without one (nil) counts nothing.
type Metrics struct {
	// Reservations (variable-cost requests): opened by Reserve, settled
	// by anyone (the request's own settlement or the sweeper's), and the
	// part of those settled by the sweeper because their lease ran out.
	ReservationsOpened, ReservationsSettled, ReservationsSwept Counter
	// Settlements that gave credits back, and the micro-credits given.
	Refunds, RefundedCredits Counter
	// Settlements whose cost exceeded the reservation: the micro-credits
	// above it (OverrunCredits), and those of it the user could not pay
	// (Shortfalls, ShortfallCredits; the overrun charged was less).
	OverrunCredits, Shortfalls, ShortfallCredits Counter
	// Credit leases this gateway took and ended, those the sweeper ended
	// for a gateway that died, requests admitted from a lease in memory,
	// and recalls (an admin change) this gateway applied.
	LeasesTaken, LeasesEnded, LeasesSwept, LeaseAdmissions, Recalls Counter
	// Sweeps run (this gateway's sweeper held the deployment's lock, so
	// one gateway of a deployment counts each sweep) and sweeps that
	// failed (Postgres or Redis unreachable, whether or not the lock
	// was held).
	SweeperRuns, SweeperFailures Counter
	// BatchSize is the number of script calls per Redis pipeline.
	BatchSize *Histogram

	// scriptLatency is each named script's pipeline round trip, in
	// nanoseconds, indexed by the script's ID.
	scriptLatency []*Histogram
	scriptNames   []string
}

// Counter is a count that only grows.
type Counter struct{ n atomic.Int64 }

// Load reads the count.
func (c *Counter) Load() int64 { return c.n.Load() }

func (c *Counter) add(n int64) { c.n.Add(n) }

// LatencyBounds are the script latency histogram's upper bounds: 50µs to
// 5s, the pipeline timeout's default, in nanoseconds.
var LatencyBounds = []int64{
	int64(50 * time.Microsecond), int64(100 * time.Microsecond), int64(250 * time.Microsecond),
	int64(500 * time.Microsecond), int64(time.Millisecond), int64(2500 * time.Microsecond),
	int64(5 * time.Millisecond), int64(10 * time.Millisecond), int64(25 * time.Millisecond),
	int64(50 * time.Millisecond), int64(100 * time.Millisecond), int64(250 * time.Millisecond),
	int64(500 * time.Millisecond), int64(time.Second), int64(2500 * time.Millisecond), int64(5 * time.Second),
}

// BatchBounds are the batch size histogram's upper bounds: powers of two
// up to scriptrun.MaxBatch, the most calls one pipeline carries.
var BatchBounds = []int64{1, 2, 4, 8, 16, 32, 64, scriptrun.MaxBatch}

// NewMetrics makes an empty Metrics with a latency histogram for every
// script the engine runs.
func NewMetrics() *Metrics {
	scripts := scriptrun.NamedScripts()
	m := &Metrics{BatchSize: newHistogram(BatchBounds),
		scriptLatency: make([]*Histogram, len(scripts)), scriptNames: make([]string, len(scripts))}
	for i, s := range scripts {
		m.scriptLatency[i], m.scriptNames[i] = newHistogram(LatencyBounds), s.Name()
	}
	return m
}

// ScriptLatency calls fn with each script's name and its latency histogram
// (nanoseconds): the round trip of the pipelines that carried it.
func (m *Metrics) ScriptLatency(fn func(script string, h *Histogram)) {
	for i, h := range m.scriptLatency {
		fn(m.scriptNames[i], h)
	}
}

// runObserver adapts Metrics to the script runner's Observer.
type runObserver struct{ m *Metrics }

// Sent counts one pipeline's size.
func (o runObserver) Sent(calls int, _ time.Duration) { o.m.BatchSize.observe(int64(calls)) }

// Carried counts the pipeline's round trip for one call's script: the
// call waited that long for its answer.
func (o runObserver) Carried(s *scriptrun.Script, took time.Duration) {
	if id := s.ID(); id >= 0 && id < len(o.m.scriptLatency) {
		o.m.scriptLatency[id].observe(int64(took))
	}
}

// The engine's hooks. Each is a no-op on a nil Metrics.

func (m *Metrics) reservationOpened() {
	if m != nil {
		m.ReservationsOpened.add(1)
	}
}

func (m *Metrics) reservationSettled(r SettleResult) {
	if m == nil {
		return
	}
	m.ReservationsSettled.add(1)
	if r.Refunded > 0 {
		m.Refunds.add(1)
		m.RefundedCredits.add(int64(r.Refunded))
	}
	m.OverrunCredits.add(int64(r.Overrun))
	if r.Shortfall > 0 {
		m.Shortfalls.add(1)
		m.ShortfallCredits.add(int64(r.Shortfall))
	}
}

func (m *Metrics) reservationSwept() {
	if m != nil {
		m.ReservationsSwept.add(1)
	}
}

func (m *Metrics) leaseTaken() {
	if m != nil {
		m.LeasesTaken.add(1)
	}
}

func (m *Metrics) leaseEnded() {
	if m != nil {
		m.LeasesEnded.add(1)
	}
}

func (m *Metrics) leaseSwept() {
	if m != nil {
		m.LeasesSwept.add(1)
	}
}

func (m *Metrics) leaseAdmitted() {
	if m != nil {
		m.LeaseAdmissions.add(1)
	}
}

func (m *Metrics) recallApplied() {
	if m != nil {
		m.Recalls.add(1)
	}
}

func (m *Metrics) sweepRan() {
	if m != nil {
		m.SweeperRuns.add(1)
	}
}

func (m *Metrics) sweepFailed() {
	if m != nil {
		m.SweeperFailures.add(1)
	}
}
