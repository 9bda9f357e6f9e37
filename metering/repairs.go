package metering

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// repairs retries Redis work that must not be lost when Redis is briefly
// unreachable, and that is safe to run more than once: releasing in-flight
// leases, cancelling charges and reservations whose answer was lost,
// settling reservations. Without it a release that failed during an outage
// kept its user "in flight" (undeletable) until the lease ran out, and a
// request refused with a 503 could stay charged.
//
// One goroutine per engine, started when the first job arrives and gone
// when the queue is empty, retries the queue with backoff until each job
// succeeds. Jobs live in memory: a gateway killed meanwhile loses them
// (leases then end at their deadline, and reservations are swept).
type repairs struct {
	log     *zap.Logger
	mu      sync.Mutex
	jobs    []repairJob
	running bool
	closed  bool
	stop    chan struct{}
	idle    chan struct{} // closed and replaced whenever the queue empties
}

type repairJob struct {
	what string
	do   func(context.Context) error
}

// maxRepairs bounds the queue. Beyond it the oldest job is dropped and
// logged: a release then ends at its lease deadline, a lost charge stays
// charged (logged with its id so an operator can refund it).
const maxRepairs = 1 << 20

func newRepairs(log *zap.Logger) *repairs {
	return &repairs{log: log, stop: make(chan struct{}), idle: make(chan struct{})}
}

// add queues a job and makes sure the retry loop runs.
func (r *repairs) add(what string, do func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.log.Error("engine closed: Redis work dropped", zap.String("work", what))
		return
	}
	if len(r.jobs) >= maxRepairs {
		r.log.Error("repair queue full: Redis work dropped", zap.String("work", r.jobs[0].what))
		r.jobs = r.jobs[1:]
	}
	r.jobs = append(r.jobs, repairJob{what: what, do: do})
	if !r.running {
		r.running = true
		go r.loop()
	}
}

func (r *repairs) loop() {
	wait := 50 * time.Millisecond
	for {
		r.mu.Lock()
		jobs := r.jobs
		r.jobs = nil
		if len(jobs) == 0 {
			r.running = false
			close(r.idle)
			r.idle = make(chan struct{})
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()

		var failed []repairJob
		for i, j := range jobs {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := j.do(ctx)
			cancel()
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrUnavailable) {
				// Not a Redis outage: retrying will not help.
				r.log.Error("Redis work failed; not retried", zap.String("work", j.what), zap.Error(err))
				continue
			}
			// Redis is still away: keep this job and the rest for the next round.
			failed = append(failed, jobs[i:]...)
			break
		}
		if len(failed) == 0 {
			wait = 50 * time.Millisecond
			continue
		}
		r.mu.Lock()
		r.jobs = append(failed, r.jobs...)
		r.mu.Unlock()
		select {
		case <-r.stop:
			r.mu.Lock()
			r.log.Error("engine closed with Redis work still queued", zap.Int("jobs", len(r.jobs)))
			r.jobs, r.running = nil, false
			r.mu.Unlock()
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// close stops retrying; queued work is logged and dropped. Idempotent.
func (r *repairs) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
}

// wait blocks until the queue is empty or ctx ends (tests, shutdown).
func (r *repairs) wait(ctx context.Context) error {
	for {
		r.mu.Lock()
		if !r.running && len(r.jobs) == 0 {
			r.mu.Unlock()
			return nil
		}
		idle := r.idle
		r.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
