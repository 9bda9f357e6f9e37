// Package scriptrun is Tollgate's pipelined Redis script runner: concurrent
// script calls coalesce into pipelines (flat combining, no worker
// goroutines), EVALSHA falls back to EVAL on NOSCRIPT for the calls that
// missed, no command is ever retried by go-redis (a lost answer is
// ErrOutcomeUnknown, never a second run), and an optional fence keeps every
// call from a Redis that restarted until it is verified. The metering
// package is its only user; it lives here so it can be tested on its own.
package scriptrun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Runner coalesces concurrent script calls into pipelines. Under load
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
type Runner struct {
	rdb        redis.UniversalClient
	timeout    time.Duration
	maxSenders int
	// fence, when set, keeps every call from a Redis that restarted until
	// verify (Engine.VerifyRedis) has checked it against the ledger.
	fence  Fence
	verify func(context.Context) error
	// observer, when set, is told of every pipeline sent.
	observer Observer

	// pipes holds go-redis pipelines for reuse (*pooledPipe): one is
	// empty again after Exec, and making one allocates.
	pipes sync.Pool

	mu      sync.Mutex
	queue   []*Call
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

// MaxBatch is the most calls one pipeline carries.
const MaxBatch = 128

// ErrClosed is what calls to a closed runner fail with.
var ErrClosed = errors.New("metering engine closed")

// Call is one script call: the script, its keys and arguments, and, once
// answered, its array-of-integers answer (Res) or its error (Err). Take
// one from Get, fill Keys and Args, run it, read Res/Err, and give it back
// with Put.
type Call struct {
	Script *Script
	Keys   []string
	Args   []any
	Res    []int64
	Err    error
	// done is signalled once the answer is in res/err, or earlier with lead
	// set when the caller is to become the sender.
	done chan struct{}
	lead bool
	// detached: nobody waits for the answer; the sender returns the call
	// to the pool after sending it.
	detached bool
	// Prepare, when set, fills Keys and Args just before the call is
	// sent, so a detached call can carry what accumulated while it waited.
	Prepare func(*Call)
	// Failed, when set on a detached call, is told of its error (nobody
	// else would be).
	Failed func(*Call)

	// What Str and Int append (args.go).
	strs         [typedArgs]string
	ints         [typedArgs]int64
	nStrs, nInts int
	// wire is the command as sent (EVALSHA, hash, keys, arguments) and cmd
	// its go-redis command: both kept with the pooled call and refilled
	// for every send, instead of a new slice and command each time.
	wire []any
	cmd  *redis.Cmd
}

// The pooled buffers are sized for the largest call on the request path
// (reserve: 7 keys, 16 arguments), so they do not grow there.
var callPool = sync.Pool{New: func() any {
	return &Call{done: make(chan struct{}, 1), Res: make([]int64, 0, 8),
		Keys: make([]string, 0, 8), Args: make([]any, 0, 20), wire: make([]any, 0, 32), cmd: new(redis.Cmd)}
}}

// New makes a runner over rdb; timeout bounds each pipeline's round trip.
func New(rdb redis.UniversalClient, timeout time.Duration) *Runner {
	r := &Runner{rdb: rdb, timeout: timeout, maxSenders: 2,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	r.pipes.New = func() any { return &pooledPipe{p: rdb.Pipeline()} }
	return r
}

// SetFence makes the runner check fence before every batch: while it is
// Blocked, verify runs first (and its error fails the batch), and a
// connection that fails with ErrFenced makes the batch go once more after
// verifying. Call it before the runner is used.
func (r *Runner) SetFence(fence Fence, verify func(context.Context) error) {
	r.fence, r.verify = fence, verify
}

// Observer is told of every pipeline a Runner sends, after its answers
// are in: how many calls it carried and how long its round trip took (a
// NOSCRIPT retry and a fence check included), then each call's script. It
// runs on the sender's goroutine, in the hot path: it must be quick and
// not block. (It is not handed the batch itself: a slice passed through
// an interface escapes, and the batch's array would be allocated on every
// send.)
type Observer interface {
	Sent(calls int, took time.Duration)
	Carried(s *Script, took time.Duration)
}

// SetObserver makes the runner tell o of every pipeline. Call it before
// the runner is used.
func (r *Runner) SetObserver(o Observer) { r.observer = o }

// Close refuses new calls; queued ones are still sent (the flusher sends
// the detached ones before it exits). Idempotent.
func (r *Runner) Close() {
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

// Detach queues a call whose answer nobody waits for (releasing an
// in-flight lease after a response). It rides in the next pipeline any
// sender sends; when no sender is active the flusher sends it. The caller
// never waits for Redis, and no goroutine is started per call.
func (r *Runner) Detach(c *Call) {
	c.detached = true
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Err = ErrClosed
		if c.Failed != nil {
			c.Failed(c)
		}
		Put(c)
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
func (r *Runner) flusher() {
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
func (r *Runner) flushTurn() bool {
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

// Get returns a pooled call to fill; Put returns it after its answer was read.
func Get(s *Script) *Call {
	c := callPool.Get().(*Call)
	c.Script, c.Keys, c.Args, c.Res, c.Err, c.lead, c.detached, c.Prepare, c.Failed = s, c.Keys[:0], c.Args[:0], c.Res[:0], nil, false, false, nil, nil
	return c
}

// Put returns a call to the pool, holding on to none of its values.
func Put(c *Call) {
	clear(c.Keys[:cap(c.Keys)])
	clear(c.Args[:cap(c.Args)])
	clear(c.wire[:cap(c.wire)])
	c.resetArgs()
	*c.cmd = redis.Cmd{}
	callPool.Put(c)
}

// Run sends the call and waits for its answer. It waits even if ctx ends,
// so the caller always learns whether a charge happened; the pipeline's own
// timeout bounds the wait.
func (r *Runner) Run(ctx context.Context, c *Call) error {
	if err := r.RunAll(ctx, []*Call{c}); err != nil {
		return err
	}
	return c.Err
}

// RunAll sends every call and waits for all of them; each call carries its
// own error. The returned error is set only when none of the calls was sent.
func (r *Runner) RunAll(ctx context.Context, calls []*Call) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
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
func (r *Runner) sendTurn(first *Call) {
	var buf [MaxBatch]*Call
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

	if r.observer == nil {
		r.exec(batch)
	} else {
		start := time.Now()
		r.exec(batch)
		took := time.Since(start)
		r.observer.Sent(len(batch), took)
		for _, c := range batch {
			r.observer.Carried(c.Script, took)
		}
	}

	r.mu.Lock()
	var next *Call
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
			if c.Err != nil && c.Failed != nil {
				c.Failed(c)
			}
			Put(c)
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

func (r *Runner) exec(batch []*Call) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	for _, c := range batch {
		if c.Prepare != nil {
			c.Prepare(c)
			c.Prepare = nil
		}
	}
	// A Redis that restarted is verified before anything is sent to it;
	// a connection that meets one unverified refuses to carry the batch,
	// which then goes once more after the verification.
	pending := batch
	for round := 0; len(pending) > 0; round++ {
		if r.fence != nil && r.fence.Blocked() {
			if err := r.verify(ctx); err != nil {
				for _, c := range pending {
					c.Err = Unavailable(err)
				}
				return
			}
		}
		pending = r.sendBatch(ctx, pending)
		if round == 1 {
			for _, c := range pending {
				c.Err = fmt.Errorf("%w: %w", ErrUnavailable, ErrFenced)
			}
			return
		}
	}
}

// sendBatch sends the calls and reads their answers; it returns the calls
// a fenced connection refused to send.
func (r *Runner) sendBatch(ctx context.Context, batch []*Call) (fenced []*Call) {
	r.send(ctx, batch, false)
	// A NOSCRIPT answer means Redis restarted or its script cache was
	// flushed: that call did nothing, while its neighbours in the pipeline
	// ran. Only those calls are sent again, with EVAL and the script's
	// source, which cannot miss (and caches the script for the next
	// EVALSHA).
	var retry []*Call
	for _, c := range batch {
		switch err := c.cmd.Err(); {
		case isNoScript(err):
			retry = append(retry, c)
		case r.fence != nil && errors.Is(err, ErrFenced):
			fenced = append(fenced, c)
		default:
			c.Res, c.Err = int64Slice(c.cmd, c.Res)
		}
	}
	if len(retry) > 0 {
		r.send(ctx, retry, true)
		for _, c := range retry {
			if r.fence != nil && errors.Is(c.cmd.Err(), ErrFenced) {
				fenced = append(fenced, c)
				continue
			}
			c.Res, c.Err = int64Slice(c.cmd, c.Res)
		}
	}
	return fenced
}

// detachedDelay is how long a detached call may wait for a sender before
// the flusher sends it alone.
const detachedDelay = 2 * time.Millisecond

// send pipelines one EVALSHA (or, with source, EVAL) per call; each
// call's command (c.cmd) carries its own answer or error.
//
// go-redis resends a pipeline whose answer it did not get (a read timeout,
// a connection reset after the write) on a new connection. For a script
// that moves money that would run it twice, so every command is marked as
// one go-redis must not retry: a lost answer reaches the caller as
// ErrOutcomeUnknown, and the engine finds out itself what happened.
//
// Nothing here allocates per call but go-redis itself: the pipeline is
// pooled, and each call's command, its argument slice and the pointers to
// its keys (go-redis writes a *string as the string) belong to the pooled
// call.
func (r *Runner) send(ctx context.Context, batch []*Call, source bool) {
	pp := r.pipes.Get().(*pooledPipe)
	cmds := pp.cmds[:0]
	for _, c := range batch {
		w := c.wire[:0]
		if source {
			w = append(w, "eval", c.Script.srcArg)
		} else {
			w = append(w, "evalsha", c.Script.hashArg)
		}
		w = append(w, len(c.Keys))
		for i := range c.Keys {
			w = append(w, &c.Keys[i])
		}
		w = append(w, c.Args...)
		c.wire = w
		*c.cmd = *redis.NewCmd(ctx, w...)
		cmds = append(cmds, noRetryCmd{c.cmd})
	}
	// Queued at once: the pipeline's own list then grows once, not once
	// per doubling.
	_ = pp.p.BatchProcess(ctx, cmds...)
	_, _ = pp.p.Exec(ctx)
	clear(cmds)
	pp.cmds = cmds[:0]
	r.pipes.Put(pp)
}

// pooledPipe is a go-redis pipeline kept for reuse, with the list of the
// batch's commands handed to it.
type pooledPipe struct {
	p    redis.Pipeliner
	cmds []redis.Cmder
}

// noRetryCmd is a command go-redis must never send twice (see send).
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// NotSent reports an error that proves the command never left the
// gateway: no connection could be made or taken from the pool.
func NotSent(err error) bool {
	var op *net.OpError
	return errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) || errors.Is(err, ErrFenced) ||
		(errors.As(err, &op) && op.Op == "dial")
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// int64Slice reads a script's array-of-integers answer.
func int64Slice(cmd *redis.Cmd, dst []int64) ([]int64, error) {
	v, err := cmd.Result()
	if err != nil {
		var rerr redis.Error
		switch {
		case errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "ERR "):
			// The script ran and failed (a Lua error, a command refused
			// inside it). Redis keeps what it wrote before the failure, so
			// this is not "did not run": the outcome is unknown, and the
			// caller's lost-answer handling applies. (redis.HasErrorPrefix
			// strips "ERR " before comparing, so it cannot test for it.)
			return dst, fmt.Errorf("%w: %w: metering script failed: %v", ErrUnavailable, ErrOutcomeUnknown, err)
		case errors.As(err, &rerr):
			// Redis answered (LOADING, BUSY, READONLY, OOM…): it did not
			// run the script.
			return dst, Unavailable(err)
		case NotSent(err):
			return dst, Unavailable(err)
		}
		// The command may have reached Redis and run: nobody can say.
		return dst, fmt.Errorf("%w: %w: %v", ErrUnavailable, ErrOutcomeUnknown, err)
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
