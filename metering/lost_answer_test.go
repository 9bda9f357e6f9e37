package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// lostAnswerWorld is a gateway engine that talks to Redis through a proxy
// able to lose answers or hold commands, with one Redis connection so the
// test knows which connection a call uses, and short timeouts.
type lostAnswerWorld struct {
	b     *meteringtest.Bundle
	proxy *meteringtest.Proxy
	gw    *metering.Engine
	key   string
}

func newLostAnswerWorld(t *testing.T) *lostAnswerWorld {
	// A server of its own: TestNoScriptNeverReachesTheCaller flushes the
	// whole server's script cache, which would make another test's
	// charge whose answer is dropped meet NOSCRIPT and never run.
	srv := meteringtest.StartRedisServer(t)
	url := "redis://" + srv.Addr() + "/0"
	b := meteringtest.New(t, meteringtest.Options{RedisURL: url})
	opt, err := redis.ParseURL(url)
	require.NoError(t, err)
	proxy := meteringtest.NewProxy(t, opt.Addr)
	opt.Addr = proxy.Addr
	opt.PoolSize = 1
	opt.ReadTimeout, opt.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	cfg := b.Config
	cfg.Fence = nil // this client has no fence of its own
	// Longer than the read timeout, as in production (5s against
	// go-redis's 3s), so a go-redis retry after a read timeout would have
	// time to run the script a second time.
	cfg.ScriptTimeout = 3 * time.Second
	gw, err := metering.NewEngine(rdb, b.DB, cfg)
	require.NoError(t, err)
	t.Cleanup(gw.Close)

	ctx := context.Background()
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)
	w := &lostAnswerWorld{b: b, proxy: proxy, gw: gw, key: key}
	// A first request warms the gateway's cache and its one connection.
	res, err := gw.ChargeTracked(ctx, key, metering.Micro, "GET /warm", time.Minute)
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	gw.Release(res.Lease)
	require.Eventually(t, func() bool { return w.inFlight(t) == 0 }, 10*time.Second, 5*time.Millisecond)
	// A release whose answer timed out (a loaded machine) is retried from
	// the repair queue even though it ran: let that retry go now, so it is
	// not the first command after a test's DropReplies or FreezeRequests
	// and does not take the hold meant for the test's own command.
	require.NoError(t, gw.WaitForRepairs(ctx))
	return w
}

func (w *lostAnswerWorld) inFlight(t *testing.T) int64 {
	v, err := w.b.Engine.GetUser(context.Background(), "ann")
	require.NoError(t, err)
	return v.InFlight
}

func (w *lostAnswerWorld) effective(t *testing.T) metering.Credits {
	v, err := w.b.Engine.GetUser(context.Background(), "ann")
	require.NoError(t, err)
	return v.Live.Effective
}

// ledger counts the Postgres events of one request label by kind.
func (w *lostAnswerWorld) ledger(t *testing.T, request string) map[string]int {
	rows, err := w.b.DB.Query(context.Background(),
		`SELECT kind, count(*) FROM events WHERE request = $1 GROUP BY kind`, request)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		require.NoError(t, rows.Scan(&kind, &n))
		out[kind] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// A charge runs in Redis but its answer is lost (a timeout): the gateway
// refuses the request, so the charge is undone, exactly once, and go-redis
// never sends the script a second time.
func TestLostAnswerChargeIsUndone(t *testing.T) {
	t.Parallel()
	w := newLostAnswerWorld(t)
	ctx := context.Background()
	before := w.effective(t)

	w.proxy.DropReplies()
	_, err := w.gw.ChargeTracked(ctx, w.key, 2*metering.Micro, "GET /lost", time.Minute)
	require.ErrorIs(t, err, metering.ErrOutcomeUnknown)
	require.ErrorIs(t, err, metering.ErrUnavailable)

	require.NoError(t, w.gw.WaitForRepairs(ctx))
	require.Equal(t, before, w.effective(t), "the refused request stayed charged")
	require.Zero(t, w.inFlight(t), "the refused request stayed in flight")
	w.b.Drain(t)
	w.b.AssertConsistent(t)
	require.Equal(t, map[string]int{"usage": 1, "void": 1}, w.ledger(t, "GET /lost"),
		"the ledger records the charge once and its undoing once")
}

// A charge is sent but held before Redis runs it (a stalled Redis, a
// partition): the gateway gives up and cancels it; the cancel runs first,
// and when the held command finally reaches Redis it is refused.
func TestHeldChargeArrivingAfterItsCancelIsRefused(t *testing.T) {
	t.Parallel()
	w := newLostAnswerWorld(t)
	ctx := context.Background()
	before := w.effective(t)

	frozen := w.proxy.FreezeRequests()
	_, err := w.gw.ChargeTracked(ctx, w.key, 2*metering.Micro, "GET /held", time.Minute)
	require.ErrorIs(t, err, metering.ErrOutcomeUnknown)
	held := frozen.Conns()
	require.NoError(t, w.gw.WaitForRepairs(ctx), "the cancel ran on a new connection")
	waiting := 0
	for _, c := range held {
		waiting += c.Held()
	}
	require.Positive(t, waiting, "the charge is still waiting in a held connection")

	for _, c := range held {
		c.Thaw()
		c.WaitClosed(t, 30*time.Second)
	}
	require.Equal(t, before, w.effective(t), "the late charge ran after its cancel")
	require.Zero(t, w.inFlight(t))
	w.b.Drain(t)
	w.b.AssertConsistent(t)
	require.Empty(t, w.ledger(t, "GET /held"), "nothing of the refused request reached the ledger")
}

// The same two orders for a reservation (variable cost).
func TestLostAnswerReservationIsCancelled(t *testing.T) {
	t.Parallel()
	for _, order := range []string{"ran first", "cancel first"} {
		t.Run(order, func(t *testing.T) {
			t.Parallel()
			w := newLostAnswerWorld(t)
			ctx := context.Background()
			before := w.effective(t)
			fixed := 3 * metering.Micro
			req := metering.ReserveRequest{Key: w.key, Fixed: &fixed, Request: "POST /reserve", Lease: time.Minute}

			var frozen *meteringtest.Frozen
			if order == "ran first" {
				w.proxy.DropReplies()
			} else {
				frozen = w.proxy.FreezeRequests()
			}
			_, err := w.gw.Reserve(ctx, req)
			require.ErrorIs(t, err, metering.ErrOutcomeUnknown)
			require.NoError(t, w.gw.WaitForRepairs(ctx))
			var held []*meteringtest.ProxyConn
			if frozen != nil {
				held = frozen.Conns()
			}
			for _, c := range held {
				c.Thaw()
				c.WaitClosed(t, 30*time.Second)
			}
			require.Equal(t, before, w.effective(t), "the refused request stayed reserved")
			require.Zero(t, w.inFlight(t))
			leases, err := w.b.Redis.ZCard(ctx, w.b.Engine.Keys().Shard(0).Leases()).Result()
			require.NoError(t, err)
			require.Zero(t, leases, "a lease is left for the sweeper")
			w.b.Drain(t)
			w.b.AssertConsistent(t)
		})
	}
}

// The client has no connection when the answers start being lost: go-redis
// closed it, as it does one whose read timed out (a set-up command's, on a
// loaded machine), and dials a new one for the next command. The hold must
// still reach that command, or the test meaning to lose its answer gets
// one: the proxy gives it to the connection carrying the first command
// after the call, and the undo that follows, on a later connection, passes.
// Cutting every connection (Down, Up) stands for the timed-out one, at a
// moment the test chooses rather than one a loaded machine might.
func TestLostAnswerOnAConnectionDialledAfterTheDrop(t *testing.T) {
	t.Parallel()
	for _, hold := range []string{"drop replies", "freeze requests"} {
		t.Run(hold, func(t *testing.T) {
			t.Parallel()
			w := newLostAnswerWorld(t)
			ctx := context.Background()
			before := w.effective(t)
			w.proxy.Down()
			w.proxy.Up()

			var frozen *meteringtest.Frozen
			if hold == "drop replies" {
				w.proxy.DropReplies()
			} else {
				frozen = w.proxy.FreezeRequests()
			}
			_, err := w.gw.ChargeTracked(ctx, w.key, 2*metering.Micro, "GET /redialled", time.Minute)
			require.ErrorIs(t, err, metering.ErrOutcomeUnknown)
			require.NoError(t, w.gw.WaitForRepairs(ctx), "the repair ran on a later connection")
			want := map[string]int{"usage": 1, "void": 1}
			if frozen != nil {
				held := frozen.Conns()
				waiting := 0
				for _, c := range held {
					waiting += c.Held()
				}
				require.Positive(t, waiting, "the charge is waiting in the connection dialled after the freeze")
				for _, c := range held {
					c.Thaw()
					c.WaitClosed(t, 30*time.Second)
				}
				want = map[string]int{}
			}
			require.Equal(t, before, w.effective(t), "the refused request stayed charged")
			require.Zero(t, w.inFlight(t))
			w.b.Drain(t)
			w.b.AssertConsistent(t)
			require.Equal(t, want, w.ledger(t, "GET /redialled"))
		})
	}
}

// Releases that fail while Redis is unreachable are retried when it
// returns, so the user does not stay "in flight" (and undeletable) until
// the lease runs out.
func TestReleaseRetriedAfterOutage(t *testing.T) {
	t.Parallel()
	w := newLostAnswerWorld(t)
	ctx := context.Background()
	res, err := w.gw.ChargeTracked(ctx, w.key, metering.Micro, "GET /x", time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(1), w.inFlight(t))

	w.proxy.Down()
	w.gw.Release(res.Lease)
	// The release fails and waits in the repair queue (a probe call fails
	// too, so the release has certainly been tried while Redis was down).
	_, err = w.gw.ChargeTracked(ctx, w.key, metering.Micro, "GET /down", time.Hour)
	require.ErrorIs(t, err, metering.ErrUnavailable)
	require.Equal(t, int64(1), w.inFlight(t))
	w.proxy.Up()
	require.NoError(t, w.gw.WaitForRepairs(ctx))
	require.Zero(t, w.inFlight(t), "the release was lost in the outage")
	require.NoError(t, w.b.Engine.DeleteUser(ctx, "test", "ann"))
}

// Every EVALSHA meets an empty script cache (as after a Redis restart or
// an operator's SCRIPT FLUSH): no charge fails for it and none runs twice.
// The runner answers NOSCRIPT with EVAL and the script's source, which
// cannot miss.
func TestNoScriptNeverReachesTheCaller(t *testing.T) {
	t.Parallel()
	w := newLostAnswerWorld(t)
	ctx := context.Background()
	before := w.effective(t)
	w.proxy.FlushScriptsBeforeEvalsha()
	for i := 0; i < 5; i++ {
		res, err := w.gw.ChargeTracked(ctx, w.key, metering.Micro, "GET /flushed", time.Minute)
		require.NoError(t, err, "charge %d", i)
		require.Equal(t, metering.Charged, res.Status)
		w.gw.Release(res.Lease)
	}
	require.Equal(t, before-5*metering.Micro, w.effective(t))
	w.b.Drain(t)
	w.b.AssertConsistent(t)
	require.Equal(t, map[string]int{"usage": 5}, w.ledger(t, "GET /flushed"))
}
