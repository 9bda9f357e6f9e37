package scriptrun_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// echo answers its caller's id and sequence number, and how many times its
// key (one per call) was incremented: a call that ran twice, or an answer
// handed to the wrong caller, shows.
var echo = scriptrun.NewScript(`local n = redis.call('INCR', KEYS[1])
return {tonumber(ARGV[1]), tonumber(ARGV[2]), n}`)

// echo2 is the same with another hash, so pipelines mix scripts.
var echo2 = scriptrun.NewScript(`-- echo2
local n = redis.call('INCR', KEYS[1])
return {tonumber(ARGV[1]), tonumber(ARGV[2]), n}`)

// slow keeps Redis busy for ARGV[1] ms, then answers like echo.
var slow = scriptrun.NewScript(`local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  local n = redis.call('TIME')
  if (n[1] * 1000000 + n[2]) - start >= tonumber(ARGV[1]) * 1000 then break end
until false
local n = redis.call('INCR', KEYS[1])
return {tonumber(ARGV[2]), tonumber(ARGV[3]), n}`)

func echoCall(s *scriptrun.Script, id, seq int) *scriptrun.Call {
	c := scriptrun.Get(s)
	c.Keys = append(c.Keys, callKey(id, seq))
	c.Args = append(c.Args, id, seq)
	return c
}

func callKey(id, seq int) string { return fmt.Sprintf("call:%d:%d", id, seq) }

// checkEcho fails the test if an answered call's answer is not its own or
// shows the script ran more than once. It reports whether it was answered.
func checkEcho(t testing.TB, c *scriptrun.Call, id, seq int) bool {
	t.Helper()
	if c.Err != nil {
		return false
	}
	if want := []int64{int64(id), int64(seq), 1}; !slices.Equal(c.Res, want) {
		t.Errorf("caller %d call %d got %v, want %v", id, seq, c.Res, want)
	}
	return true
}

func newRunner(t testing.TB, rdb redis.UniversalClient, timeout time.Duration) *scriptrun.Runner {
	r := scriptrun.New(rdb, timeout)
	t.Cleanup(r.Close)
	return r
}

// Many callers at once, singly and several calls per RunAll, two scripts:
// every caller gets its own answers, every script runs once.
func TestConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	const callers, rounds = 48, 150
	var wg sync.WaitGroup
	var answered atomic.Int64
	for id := range callers {
		wg.Go(func() {
			ctx := context.Background()
			for round := range rounds {
				s := echo
				if (id+round)%2 == 1 {
					s = echo2
				}
				if round%5 == 0 {
					calls := []*scriptrun.Call{echoCall(s, id, 3*round), echoCall(echo, id, 3*round+1), echoCall(echo2, id, 3*round+2)}
					if err := r.RunAll(ctx, calls); err != nil {
						t.Errorf("RunAll: %v", err)
						return
					}
					for i, c := range calls {
						if !checkEcho(t, c, id, 3*round+i) {
							t.Errorf("caller %d: %v", id, c.Err)
						}
						answered.Add(1)
						scriptrun.Put(c)
					}
					continue
				}
				c := echoCall(s, id, 3*round)
				if err := r.Run(ctx, c); err != nil {
					t.Errorf("caller %d: %v", id, err)
				}
				checkEcho(t, c, id, 3*round)
				answered.Add(1)
				scriptrun.Put(c)
			}
		})
	}
	wg.Wait()
	// Every key exists once, incremented once.
	keys, err := rdb.Keys(context.Background(), "call:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(keys)) != answered.Load() {
		t.Fatalf("%d keys for %d answered calls", len(keys), answered.Load())
	}
	// For the log: how many EVALSHAs (a few NOSCRIPT at first, each
	// answered with EVAL).
	stats, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls; %s", answered.Load(), grepLine(stats, "cmdstat_evalsha"))
}

func grepLine(s, prefix string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// SCRIPT FLUSH between calls: the next call still answers (EVAL with the
// source), and the one after is an EVALSHA again.
func TestNoScriptFallsBackToEval(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	ctx := context.Background()
	for seq := range 6 {
		if seq%2 == 0 {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c := echoCall(echo, 1, seq)
		if err := r.Run(ctx, c); err != nil {
			t.Fatalf("call %d after SCRIPT FLUSH: %v", seq, err)
		}
		if !checkEcho(t, c, 1, seq) {
			t.Fatalf("call %d: %v", seq, c.Err)
		}
		scriptrun.Put(c)
	}
	stats := rdb.Info(ctx, "commandstats").Val()
	if grepLine(stats, "cmdstat_eval:") == "" {
		t.Fatalf("no EVAL was sent after SCRIPT FLUSH:\n%s", stats)
	}
}

// SCRIPT FLUSH while many callers run two scripts: pipelines where some
// calls miss the cache and their neighbours ran. Every call answers, once.
func TestNoScriptUnderLoad(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	ctx := context.Background()
	stop := make(chan struct{})
	var flushes atomic.Int64
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Errorf("SCRIPT FLUSH: %v", err)
				return
			}
			flushes.Add(1)
		}
	})
	var wg sync.WaitGroup
	for id := range 24 {
		wg.Go(func() {
			for seq := range 150 {
				s := echo
				if seq%2 == 1 {
					s = echo2
				}
				c := echoCall(s, id, seq)
				if err := r.Run(ctx, c); err != nil {
					t.Errorf("caller %d call %d: %v", id, seq, err)
				}
				checkEcho(t, c, id, seq)
				scriptrun.Put(c)
			}
		})
	}
	wg.Wait()
	close(stop)
	flusher.Wait()
	t.Logf("%d flushes; %s", flushes.Load(), grepLine(rdb.Info(ctx, "commandstats").Val(), "cmdstat_eval:"))
}

// stressThrough runs callers until disrupt returns, then checks that every
// answered call was right, every failed one failed as unavailable, and
// that the runner works again afterwards.
func stressThrough(t *testing.T, r *scriptrun.Runner, rdb *redis.Client, disrupt func()) (answered, failed int64) {
	t.Helper()
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var nAnswered, nFailed atomic.Int64
	var seqs [16]int
	for id := range len(seqs) {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					seqs[id] = seq
					return
				default:
				}
				c := echoCall(echo, id, seq)
				err := r.Run(ctx, c)
				switch {
				case checkEcho(t, c, id, seq):
					nAnswered.Add(1)
				case !errors.Is(err, scriptrun.ErrUnavailable):
					t.Errorf("caller %d call %d failed with %v, want ErrUnavailable", id, seq, err)
				default:
					nFailed.Add(1)
				}
				scriptrun.Put(c)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	disrupt()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()

	// Later calls work: the pool's dead connections are replaced.
	ok := 0
	deadline := time.Now().Add(5 * time.Second)
	for seq := 1 << 20; ok < 50; seq++ {
		c := echoCall(echo, 99, seq)
		if err := r.Run(ctx, c); err == nil {
			checkEcho(t, c, 99, seq)
			ok++
		} else if ok > 0 || time.Now().After(deadline) {
			t.Fatalf("call after the disruption (%d answered since): %v", ok, err)
		}
		scriptrun.Put(c)
	}
	return nAnswered.Load(), nFailed.Load()
}

// CLIENT KILL on the runner's connections mid-stream: callers whose
// answers were lost get ErrUnavailable (ErrOutcomeUnknown when the call may
// have run), never another caller's answer; nothing runs twice (go-redis
// must not resend); later calls work.
func TestClientKillMidStream(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer admin.Close()
	ctx := context.Background()
	killed := int64(0)
	answered, failed := stressThrough(t, r, rdb, func() {
		for range 10 {
			n, err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result()
			if err != nil {
				t.Fatalf("CLIENT KILL: %v", err)
			}
			killed += n
			time.Sleep(10 * time.Millisecond)
		}
	})
	if killed == 0 {
		t.Fatal("CLIENT KILL killed no connection")
	}
	// Nothing ran twice, answered or not.
	var cursor uint64
	for {
		keys, next, err := admin.Scan(ctx, cursor, "call:*", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if v := admin.Get(ctx, k).Val(); v != "1" {
				t.Errorf("%s ran %s times", k, v)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	t.Logf("%d connections killed; %d calls answered, %d failed as unavailable", killed, answered, failed)
}

// A Redis restart mid-stream (SIGKILL, then a new server on the same port
// with an empty script cache): callers get ErrUnavailable or their own
// answer; later calls work (through EVAL, then EVALSHA).
func TestRedisRestartMidStream(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	answered, failed := stressThrough(t, r, rdb, func() {
		srv.kill() // returns once the process is gone
		// While Redis is down a call fails as unavailable, whatever the
		// timing of the callers around it.
		c := echoCall(echo, 999, 0)
		if err := r.Run(context.Background(), c); !errors.Is(err, scriptrun.ErrUnavailable) {
			t.Errorf("a call while Redis is down: %v, want ErrUnavailable", err)
		}
		scriptrun.Put(c)
		srv.start()
	})
	t.Logf("%d calls answered, %d failed as unavailable", answered, failed)
}

// A caller whose context is already cancelled returns at once, sends
// nothing, and does not disturb the others, even while Redis is busy.
// A caller cancelled after its call was queued or sent still waits for its
// answer (bounded by the runner's timeout), so it learns whether the script
// ran: either way its answer is its own.
func TestContextCancellation(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	const timeout = 2 * time.Second
	r := newRunner(t, rdb, timeout)
	ctx := context.Background()

	// Redis busy for 300 ms in one caller's script.
	busy := make(chan *scriptrun.Call)
	go func() {
		c := scriptrun.Get(slow)
		c.Keys = append(c.Keys, callKey(1000, 0))
		c.Args = append(c.Args, 300, 1000, 0)
		_ = r.Run(ctx, c)
		busy <- c
	}()
	time.Sleep(30 * time.Millisecond)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	c := echoCall(echo, 1001, 0)
	err := r.Run(cancelled, c)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", err)
	}
	scriptrun.Put(c)
	bc := <-busy
	if want := []int64{1000, 0, 1}; bc.Err != nil || !slices.Equal(bc.Res, want) {
		t.Errorf("busy caller: %v %v, want %v", bc.Res, bc.Err, want)
	}
	if n, _ := rdb.Exists(ctx, callKey(1001, 0)).Result(); n != 0 {
		t.Error("a call cancelled before it was run was sent")
	}

	// Callers cancelled at random moments among callers that are not.
	var wg sync.WaitGroup
	var sentCancelled, notSent atomic.Int64
	for id := range 32 {
		wg.Go(func() {
			for seq := range 100 {
				cctx, cancel := ctx, context.CancelFunc(func() {})
				cancelling := id%2 == 0
				if cancelling {
					cctx, cancel = context.WithCancel(ctx)
					if seq%4 == 0 {
						cancel() // before Run: nothing is sent
					} else {
						go func() {
							time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
							cancel()
						}()
					}
				}
				c := echoCall(echo, id, seq)
				err := r.Run(cctx, c)
				switch {
				case cancelling && errors.Is(err, context.Canceled):
					notSent.Add(1)
					if n, _ := rdb.Exists(ctx, callKey(id, seq)).Result(); n != 0 {
						t.Errorf("caller %d call %d: cancelled, yet sent", id, seq)
					}
				case err == nil && checkEcho(t, c, id, seq):
					if cancelling {
						sentCancelled.Add(1)
					}
				default:
					t.Errorf("caller %d call %d (cancelling %v): %v", id, seq, cancelling, err)
				}
				cancel()
				scriptrun.Put(c)
			}
		})
	}
	wg.Wait()
	t.Logf("cancelled callers: %d answered, %d returned before sending", sentCancelled.Load(), notSent.Load())
}

type fakeFence struct{ blocked atomic.Bool }

func (f *fakeFence) Blocked() bool { return f.blocked.Load() }

// While the fence is up, the runner verifies before it sends; a failed
// verification fails the batch as unavailable with nothing sent.
func TestFence(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	ctx := context.Background()
	f := &fakeFence{}
	var verifies atomic.Int64
	verifyErr := errors.New("ledger unreachable")
	var fail atomic.Bool
	r.SetFence(f, func(context.Context) error {
		verifies.Add(1)
		if fail.Load() {
			return verifyErr
		}
		f.blocked.Store(false)
		return nil
	})

	c := echoCall(echo, 1, 0)
	if err := r.Run(ctx, c); err != nil || !checkEcho(t, c, 1, 0) || verifies.Load() != 0 {
		t.Fatalf("unfenced: %v %v, %d verifications", c.Res, err, verifies.Load())
	}
	scriptrun.Put(c)

	f.blocked.Store(true)
	fail.Store(true)
	c = echoCall(echo, 1, 1)
	err := r.Run(ctx, c)
	if !errors.Is(err, scriptrun.ErrUnavailable) || !errors.Is(err, verifyErr) {
		t.Fatalf("fenced, verification failing: %v", err)
	}
	if n, _ := rdb.Exists(ctx, callKey(1, 1)).Result(); n != 0 {
		t.Fatal("a call was sent to a fenced Redis")
	}
	scriptrun.Put(c)

	fail.Store(false)
	c = echoCall(echo, 1, 2)
	if err := r.Run(ctx, c); err != nil || !checkEcho(t, c, 1, 2) {
		t.Fatalf("after verifying: %v %v", c.Res, err)
	}
	if verifies.Load() != 2 {
		t.Fatalf("%d verifications, want 2", verifies.Load())
	}
	scriptrun.Put(c)
}

// A script slower than the read deadline: its answer is lost, so the
// caller hears ErrOutcomeUnknown (the script may have run), and go-redis
// does not run it again. The deadline is the client's ReadTimeout; the
// runner's own timeout shortens it only on a client with
// ContextTimeoutEnabled (go-redis ignores context deadlines otherwise).
func TestTimeoutIsOutcomeUnknown(t *testing.T) {
	srv := startRedis(t)
	for _, tc := range []struct {
		name string
		opt  redis.Options
		run  time.Duration
	}{
		{"ReadTimeout", redis.Options{ReadTimeout: 100 * time.Millisecond}, 2 * time.Second},
		{"runner timeout", redis.Options{ReadTimeout: 2 * time.Second, ContextTimeoutEnabled: true}, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			opt.Addr = srv.addr()
			rdb := redis.NewClient(&opt)
			defer rdb.Close()
			r := newRunner(t, rdb, tc.run)
			ctx := context.Background()
			key := callKey(7, int(tc.run))
			c := scriptrun.Get(slow)
			c.Keys = append(c.Keys, key)
			c.Args = append(c.Args, 400, 7, 0)
			err := r.Run(ctx, c)
			if !errors.Is(err, scriptrun.ErrUnavailable) || !errors.Is(err, scriptrun.ErrOutcomeUnknown) {
				t.Fatalf("slow script past the deadline: %v", err)
			}
			scriptrun.Put(c)
			// The script goes on in Redis after the caller gave up: wait
			// for its write (no fixed sleep: a loaded machine is slower),
			// then check it ran once.
			v := ""
			for deadline := time.Now().Add(30 * time.Second); v == "" && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				v = rdb.Get(ctx, key).Val()
			}
			if v != "1" {
				t.Fatalf("the slow script ran %q times, want once", v)
			}
		})
	}
}

// A script's error reply ("ERR ...": a Lua error or a command refused
// inside the script) means the script ran and may have written before it
// failed (Redis does not roll back): outcome unknown, never "did not run".
func TestScriptError(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	ctx := context.Background()
	// A script that fails after a write: Redis keeps the write, so the
	// runner must not say the script did not run.
	for _, src := range []string{
		`redis.call('SET', KEYS[1], 'written'); return redis.error_reply('ERR nope')`,
		`redis.call('SET', KEYS[1], 'written'); return redis.call('INCR', 'no-such-' .. nil)`,
	} {
		c := scriptrun.Get(scriptrun.NewScript(src))
		c.Keys = append(c.Keys, "script-error-key")
		err := r.Run(ctx, c)
		if err == nil || !errors.Is(err, scriptrun.ErrOutcomeUnknown) || !errors.Is(err, scriptrun.ErrUnavailable) {
			t.Fatalf("script error: %v, want outcome unknown", err)
		}
		if !strings.Contains(err.Error(), "metering script failed") {
			t.Errorf("script error: %v names no script failure", err)
		}
		if v := rdb.Get(ctx, "script-error-key").Val(); v != "written" {
			t.Errorf("the write before the failure: %q", v)
		}
		rdb.Del(ctx, "script-error-key")
		scriptrun.Put(c)
	}
}

// Detached calls are sent by the flusher when no caller takes a turn,
// filled by Prepare just before; after Close, calls fail with ErrClosed
// and a detached call's Failed hears it.
func TestDetachAndClose(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := scriptrun.New(rdb, 2*time.Second)
	ctx := context.Background()
	for seq := range 20 {
		c := scriptrun.Get(echo)
		c.Prepare = func(c *scriptrun.Call) {
			c.Keys = append(c.Keys, callKey(5, seq))
			c.Args = append(c.Args, 5, seq)
		}
		c.Failed = func(c *scriptrun.Call) { t.Errorf("detached call failed: %v", c.Err) }
		r.Detach(c)
	}
	r.Close() // sends what is queued
	for seq := range 20 {
		if v := rdb.Get(ctx, callKey(5, seq)).Val(); v != "1" {
			t.Errorf("detached call %d ran %q times", seq, v)
		}
	}
	c := echoCall(echo, 6, 0)
	if err := r.Run(ctx, c); !errors.Is(err, scriptrun.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	scriptrun.Put(c)
	var failed error
	c = echoCall(echo, 6, 1)
	c.Failed = func(c *scriptrun.Call) { failed = c.Err }
	r.Detach(c)
	if !errors.Is(failed, scriptrun.ErrClosed) {
		t.Errorf("Detach after Close: %v", failed)
	}
	r.Close() // idempotent
}
