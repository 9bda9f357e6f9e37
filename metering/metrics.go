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
	counts [NumCounters]atomic.Int64
	// BatchSize is the number of script calls per Redis pipeline.
	BatchSize *Histogram

	// scriptLatency is each named script's pipeline round trip, in
	// nanoseconds, indexed by the script's ID.
	scriptLatency []*Histogram
	scriptNames   []string
}

// CounterID names one of the counts a Metrics keeps; each only grows.
type CounterID int

const (
	// Reservations (variable-cost requests): opened by Reserve, settled
	// by anyone (the request's own settlement or the sweeper's), and the
	// part of those settled by the sweeper because their lease ran out.
	ReservationsOpened CounterID = iota
	ReservationsSettled
	ReservationsSwept
	// Settlements that gave credits back, and the micro-credits given.
	Refunds
	RefundedCredits
	// Settlements whose cost exceeded the reservation: the micro-credits
	// above it (OverrunCredits), and those of it the user could not pay
	// (Shortfalls, ShortfallCredits; the overrun charged was less).
	OverrunCredits
	Shortfalls
	ShortfallCredits
	// Credit leases this gateway took and ended, those the sweeper ended
	// for a gateway that died, requests admitted from a lease in memory,
	// and recalls (an admin change) this gateway applied.
	LeasesTaken
	LeasesEnded
	LeasesSwept
	LeaseAdmissions
	Recalls
	// Sweeps run (this gateway's sweeper held the deployment's lock, so
	// one gateway of a deployment counts each sweep) and sweeps that
	// failed (Postgres or Redis unreachable, whether or not the lock
	// was held).
	SweeperRuns
	SweeperFailures
	// Events the reconciler recorded in the ledger or dead-lettered (an
	// entry dead-lettered whole counts as one), and its rounds that failed
	// (Redis or Postgres unreachable, a batch Postgres refused; the
	// batch's entries stay pending and are read again).
	ReconciledEvents
	ReconcileFailures
	// NumCounters is the number of counters (not one itself).
	NumCounters
)

// Count reads a counter.
func (m *Metrics) Count(id CounterID) int64 { return m.counts[id].Load() }

// add counts n; a nil Metrics counts nothing, so the engine's hooks need
// no check of their own.
func (m *Metrics) add(id CounterID, n int64) {
	if m != nil {
		m.counts[id].Add(n)
	}
}

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

// reservationSettled counts a settlement and what it gave back or took
// beyond its reservation.
func (m *Metrics) reservationSettled(r SettleResult) {
	if m == nil {
		return
	}
	m.add(ReservationsSettled, 1)
	if r.Refunded > 0 {
		m.add(Refunds, 1)
		m.add(RefundedCredits, int64(r.Refunded))
	}
	m.add(OverrunCredits, int64(r.Overrun))
	if r.Shortfall > 0 {
		m.add(Shortfalls, 1)
		m.add(ShortfallCredits, int64(r.Shortfall))
	}
}
