package metering

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptRunner coalesces concurrent script calls into pipelines. Under load
// many requests wait for Redis at once; sending their EVALSHAs in one write
// and reading the answers in one read costs Redis and the kernel one round of
// syscalls instead of one per request.
//
// There are no worker goroutines: callers take turns being the sender (flat
// combining). A caller that finds fewer than maxSenders pipelines in flight
// sends everything queued, its own call included, from its own goroutine;
// otherwise it queues and waits. A sender that finishes hands its turn to the
// first queued caller. A lone caller thus makes one direct round trip with
// no goroutine switch, and under load at most maxSenders pipelines are in
// flight, each carrying whatever queued up meanwhile.
type scriptRunner struct {
	rdb        redis.UniversalClient
	timeout    time.Duration
	maxSenders int

	mu      sync.Mutex
	queue   []*scriptCall
	senders int
	closed  bool

	// Detached calls (see detach) need a sender even when no caller is
	// around to take a turn: one flusher goroutine per runner, started on
	// the first detached call, is woken through wake.
	flusherOnce sync.Once
	wake        chan struct{}
	stop        chan struct{}
	stopped     chan struct{}
}

const runnerMaxBatch = 128

var errRunnerClosed = errors.New("metering engine closed")

type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	res    []int64
	err    error
	// done is signalled once the answer is in res/err, or earlier with lead
	// set when the caller is to become the sender.
	done chan struct{}
	lead bool
	// detached: nobody waits for the answer; the sender returns the call
	// to the pool after sending it.
	detached bool
	// prepare, when set, fills keys and args just before the call is
	// sent, so a detached call can carry what accumulated while it waited.
	prepare func(*scriptCall)
}

var callPool = sync.Pool{New: func() any {
	return &scriptCall{done: make(chan struct{}, 1), res: make([]int64, 0, 8),
		keys: make([]string, 0, 4), args: make([]any, 0, 12)}
}}

func newScriptRunner(rdb redis.UniversalClient) *scriptRunner {
	return &scriptRunner{rdb: rdb, timeout: 5 * time.Second, maxSenders: 2,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
}

// close refuses new calls; queued ones are still sent (the flusher sends
// the detached ones before it exits). Idempotent.
func (r *scriptRunner) close() {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if already {
		return
	}
	close(r.stop)
	started := true
	r.flusherOnce.Do(func() { started = false })
	if started {
		<-r.stopped
	}
}

// detach queues a call whose answer nobody waits for (releasing an
// in-flight lease after a response). It rides in the next pipeline any
// sender sends; when no sender is active the flusher sends it. The caller
// never waits for Redis, and no goroutine is started per call.
func (r *scriptRunner) detach(c *scriptCall) {
	c.detached = true
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		putCall(c)
		return
	}
	r.queue = append(r.queue, c)
	idle := r.senders == 0
	r.mu.Unlock()
	r.flusherOnce.Do(func() { go r.flusher() })
	if idle {
		select {
		case r.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// flusher takes a sender's turn whenever detached calls wait with no
// sender active, and once more when the runner closes.
func (r *scriptRunner) flusher() {
	defer close(r.stopped)
	for {
		select {
		case <-r.wake:
		case <-r.stop:
			for r.flushTurn() {
			}
			return
		}
		// Give the next charge a moment to carry the detached calls in its
		// pipeline: under steady traffic one comes well within this, and
		// a release then costs no round trip of its own.
		select {
		case <-time.After(detachedDelay):
		case <-r.stop:
		}
		for r.flushTurn() {
		}
	}
}

// flushTurn sends one batch if calls are queued and a sender slot is free;
// it reports whether it did.
func (r *scriptRunner) flushTurn() bool {
	r.mu.Lock()
	if len(r.queue) == 0 || r.senders >= r.maxSenders {
		r.mu.Unlock()
		return false
	}
	r.senders++
	r.mu.Unlock()
	r.sendTurn(nil)
	return true
}

// getCall returns a pooled call to fill; putCall returns it after its answer was read.
func getCall(s *redis.Script) *scriptCall {
	c := callPool.Get().(*scriptCall)
	c.script, c.keys, c.args, c.res, c.err, c.lead, c.detached, c.prepare = s, c.keys[:0], c.args[:0], c.res[:0], nil, false, false, nil
	return c
}

func putCall(c *scriptCall) {
	clear(c.args[:cap(c.args)])
	callPool.Put(c)
}

// run sends the call and waits for its answer. It waits even if ctx ends,
// so the caller always learns whether a charge happened; the pipeline's own
// timeout bounds the wait.
func (r *scriptRunner) run(ctx context.Context, c *scriptCall) error {
	if err := r.runAll(ctx, []*scriptCall{c}); err != nil {
		return err
	}
	return c.err
}

// runAll sends every call and waits for all of them; each call carries its
// own error. The returned error is set only when none of the calls was sent.
func (r *scriptRunner) runAll(ctx context.Context, calls []*scriptCall) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errRunnerClosed
	}
	r.queue = append(r.queue, calls...)
	send := r.senders < r.maxSenders
	if send {
		r.senders++
	}
	r.mu.Unlock()
	if send {
		r.sendTurn(nil)
	}
	for _, c := range calls {
		for {
			<-c.done
			if !c.lead {
				break
			}
			c.lead = false
			r.sendTurn(c)
		}
	}
	return nil
}

// sendTurn sends one batch (first, when given, then the head of the
// queue), then passes the sender's turn to the next queued call, taking it
// off the queue so no other sender can batch it meanwhile, or gives the turn
// up when the queue is empty.
func (r *scriptRunner) sendTurn(first *scriptCall) {
	var buf [runnerMaxBatch]*scriptCall
	n := 0
	if first != nil {
		buf[0], n = first, 1
	}
	r.mu.Lock()
	n += copy(buf[n:], r.queue)
	taken := n
	if first != nil {
		taken--
	}
	rest := copy(r.queue, r.queue[taken:])
	clear(r.queue[rest:])
	r.queue = r.queue[:rest]
	r.mu.Unlock()
	batch := buf[:n]

	r.exec(batch)

	r.mu.Lock()
	var next *scriptCall
	wakeFlusher := false
	switch {
	case len(r.queue) > 0 && !r.queue[0].detached:
		next = r.queue[0]
		next.lead = true
		rest := copy(r.queue, r.queue[1:])
		r.queue[rest] = nil
		r.queue = r.queue[:rest]
	case len(r.queue) > 0:
		// Nobody waits on a detached call to take the turn: the flusher
		// does, so this caller can return with its answer.
		r.senders--
		wakeFlusher = true
	default:
		r.senders--
	}
	r.mu.Unlock()
	for _, c := range batch {
		if c.detached {
			putCall(c)
			continue
		}
		c.done <- struct{}{}
	}
	if next != nil {
		next.done <- struct{}{}
	}
	if wakeFlusher {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

func (r *scriptRunner) exec(batch []*scriptCall) {
	var cmdBuf [runnerMaxBatch]*redis.Cmd
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	for _, c := range batch {
		if c.prepare != nil {
			c.prepare(c)
			c.prepare = nil // a NOSCRIPT resend keeps what it took
		}
	}
	// A NOSCRIPT answer means Redis restarted or its script cache was
	// flushed; that call did nothing, while its neighbours in the pipeline
	// ran. Only the NOSCRIPT calls are loaded and sent again, a few times
	// in case the cache is flushed again meanwhile.
	pending := batch
	for round := 0; len(pending) > 0; round++ {
		cmds := r.send(ctx, pending, cmdBuf[:0])
		var retry []*scriptCall
		for i, c := range pending {
			if isNoScript(cmds[i].Err()) && round < noScriptRetries {
				retry = append(retry, c)
				continue
			}
			c.res, c.err = int64Slice(cmds[i], c.res)
		}
		for _, c := range retry {
			if err := c.script.Load(ctx, r.rdb).Err(); err != nil {
				for _, c := range retry {
					c.err = unavailable(err)
				}
				return
			}
		}
		pending = retry
	}
}

// detachedDelay is how long a detached call may wait for a sender before
// the flusher sends it alone.
const detachedDelay = 2 * time.Millisecond

// noScriptRetries bounds how often one batch reloads its scripts.
const noScriptRetries = 3

// send pipelines one EVALSHA per call; each command carries its own error.
func (r *scriptRunner) send(ctx context.Context, batch []*scriptCall, cmds []*redis.Cmd) []*redis.Cmd {
	cmds = cmds[:0]
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range batch {
			cmds = append(cmds, c.script.EvalSha(ctx, p, c.keys, c.args...))
		}
		return nil
	})
	return cmds
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// int64Slice reads a script's array-of-integers answer.
func int64Slice(cmd *redis.Cmd, dst []int64) ([]int64, error) {
	v, err := cmd.Result()
	if err != nil {
		if redis.HasErrorPrefix(err, "ERR") {
			return dst, fmt.Errorf("metering script: %w", err)
		}
		return dst, unavailable(err)
	}
	arr, ok := v.([]any)
	if !ok {
		return dst, fmt.Errorf("metering script answered %T, want an array", v)
	}
	for _, x := range arr {
		n, ok := x.(int64)
		if !ok {
			return dst, fmt.Errorf("metering script answered %T in its array", x)
		}
		dst = append(dst, n)
	}
	return dst, nil
}
