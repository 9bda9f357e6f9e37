//go:build faults

package faults

import (
	"fmt"
	"math/rand"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// fault is one kind of failure a cycle injects while the load runs. inject
// also heals it (restarts what it killed): the cycle then checks that the
// service recovers and, once quiet, that the invariants hold.
type fault struct {
	name, about string
	// mix, when set, is what the clients send while the fault runs.
	mix    func(rng *rand.Rand) *mix
	inject func(w *world, c *cycle) error
}

var catalogue = []*fault{
	{name: "redis-kill", about: "Redis SIGKILLed, restarted from its AOF", mix: slowHalf, inject: redisKill},
	{name: "redis-crash", about: "Redis SIGKILLed and its AOF cut back by one second of writes, as after an OS crash", inject: redisCrash},
	{name: "redis-stall", about: "Redis SIGSTOPped longer than the gateway's 5 s script timeout", mix: slowHalf, inject: redisStall},
	{name: "postgres-stop", about: "Postgres stopped for 30 s", inject: postgresStop},
	{name: "gateway-kill-fixed", about: "a gateway SIGKILLed with fixed-cost requests in flight",
		mix:    func(*rand.Rand) *mix { return &mix{weights: [4]int{4, 1, 1, 6}, modes: []string{"slow"}, share: 0.7} },
		inject: func(w *world, c *cycle) error { return gatewayKill(w, c, upFixed, 2) }},
	{name: "gateway-kill-stream", about: "one of three gateways SIGKILLed mid-stream under priced load, the other two carrying on",
		mix:    func(*rand.Rand) *mix { return &mix{weights: [4]int{1, 1, 8, 1}, modes: []string{"slow"}, share: 0.8} },
		inject: func(w *world, c *cycle) error { return gatewayKill(w, c, upChat, 3) }},
	{name: "upstream-hang", about: "the upstream hangs (before answering or mid-stream)",
		mix: func(rng *rand.Rand) *mix {
			return &mix{weights: normalMix.weights, modes: []string{"hang"}, share: 0.2 + rng.Float64()*0.2}
		},
		inject: upstreamFault},
	{name: "upstream-reset", about: "the upstream resets connections (before answering or mid-stream) or answers 500",
		mix: func(rng *rand.Rand) *mix {
			return &mix{weights: normalMix.weights, modes: []string{"reset", "reset", "fail"}, share: 0.3 + rng.Float64()*0.3}
		},
		inject: upstreamFault},
	{name: "upstream-slow", about: "the upstream answers slowly",
		mix: func(rng *rand.Rand) *mix {
			return &mix{weights: normalMix.weights, modes: []string{"slow"}, share: 0.6 + rng.Float64()*0.4}
		},
		inject: upstreamFault},
	{name: "gateway-reload", about: "`tollgate reload` of a gateway under load: a route's cost and credit leases switched and back, then a forced reload",
		mix: slowHalf, inject: gatewayReload},
	{name: "reconciler-kill", about: "a gateway SIGKILLed while its reconciler drains the backlog Postgres's absence left", inject: reconcilerKill},
}

// slowHalf makes half the requests slow at the upstream, so that many are
// still being answered when Redis goes away and must release their lease
// or settle their reservation once it is back.
func slowHalf(*rand.Rand) *mix {
	return &mix{weights: normalMix.weights, modes: []string{"slow"}, share: 0.5}
}

func faultNamed(name string) *fault {
	for _, f := range catalogue {
		if f.name == name {
			return f
		}
	}
	return nil
}

func faultNames(fs []*fault) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.name)
	}
	return strings.Join(names, ", ")
}

// redisKill kills Redis while requests are being answered upstream, so
// that they end (and must release their lease or settle) while it is down,
// for longer than the Redis client's own retries last.
func redisKill(w *world, c *cycle) error {
	c.pause(0, time.Second)
	busy := 0
	err := waitFor("4 requests being answered upstream", time.Minute, func() (bool, string) {
		busy = w.up.busy()
		return busy >= 4, fmt.Sprintf("%d now", busy)
	})
	w.redis.p.kill()
	down := c.pause(3*time.Second, 5*time.Second)
	t0 := time.Now()
	if err := w.redis.start(); err != nil {
		return err
	}
	c.note("Redis SIGKILLed with %d requests at the upstream, down %s, restarted from its AOF in %s", busy, down, time.Since(t0).Round(time.Millisecond))
	return err
}

func redisCrash(w *world, c *cycle) error {
	c.pause(time.Second, 2*time.Second) // at least a second of writes to lose
	cut, keptUntil, err := w.redis.crash(time.Second)
	if err != nil {
		return err
	}
	c.lostAfter = keptUntil
	down := c.pause(500*time.Millisecond, 2*time.Second)
	t0 := time.Now()
	if err := w.redis.start(); err != nil {
		return fmt.Errorf("Redis did not start from the cut AOF: %w", err)
	}
	c.note("Redis SIGKILLed; %s; down %s, restarted in %s", cut, down, time.Since(t0).Round(time.Millisecond))
	return nil
}

func redisStall(w *world, c *cycle) error {
	c.pause(0, time.Second)
	if err := w.redis.stall(); err != nil {
		return err
	}
	stalled := c.pause(6*time.Second, 9*time.Second)
	if err := w.redis.resume(); err != nil {
		return err
	}
	c.note("Redis SIGSTOPped for %s, then SIGCONT", stalled)
	return nil
}

func postgresStop(w *world, c *cycle) error {
	c.pause(0, time.Second)
	w.pg.stop()
	time.Sleep(30 * time.Second)
	t0 := time.Now()
	if err := w.pg.start(); err != nil {
		return err
	}
	c.note("Postgres stopped for 30s, started again in %s", time.Since(t0).Round(time.Millisecond))
	return nil
}

// gatewayKill SIGKILLs a gateway once at least min requests of kind are
// being answered by the upstream for it, then restarts it.
func gatewayKill(w *world, c *cycle, kind string, atLeast int) error {
	victim := c.rng.Intn(len(w.gws))
	g := w.gws[victim]
	inFlight := 0
	err := waitFor(fmt.Sprintf("%d %s requests in flight on %s", atLeast, kind, g.name), time.Minute, func() (bool, string) {
		inFlight = w.up.activeOn(g.name, kind)
		return inFlight >= atLeast, fmt.Sprintf("%d now", inFlight)
	})
	w.killGateway(c, victim)
	down := c.pause(300*time.Millisecond, 2*time.Second)
	if rerr := g.start(); rerr != nil {
		return rerr
	}
	c.note("%s SIGKILLed with %d %s requests at the upstream, restarted after %s", g.name, inFlight, kind, down)
	return err
}

func upstreamFault(w *world, c *cycle) error {
	m := c.load.mix.Load()
	d := c.pause(5*time.Second, 10*time.Second)
	c.note("upstream misbehaved (%s) for %.0f%% of requests during %s", strings.Join(m.modes, "/"), m.share*100, d)
	return nil
}

// reconcilerKill stops Postgres long enough for a backlog, starts it, and
// SIGKILLs the first gateway seen writing a batch of the backlog: a
// transaction of its own open (its connections carry its name as
// application_name) while it holds at least backlogBatch events read but
// not acknowledged.
func reconcilerKill(w *world, c *cycle) error {
	c.pause(0, time.Second)
	w.pg.stop()
	backlog := c.pause(4*time.Second, 8*time.Second)
	if err := w.pg.start(); err != nil {
		return err
	}
	victim, pending := -1, int64(0)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && victim < 0; time.Sleep(5 * time.Millisecond) {
		victim, pending = w.gatewayMidBatch()
	}
	how := fmt.Sprintf("while writing a batch (%d events read, not yet acknowledged)", pending)
	if victim < 0 {
		victim, how = c.rng.Intn(len(w.gws)), "(no gateway was seen mid-batch within 30s)"
	}
	g := w.gws[victim]
	w.killGateway(c, victim)
	down := c.pause(300*time.Millisecond, 2*time.Second)
	if err := g.start(); err != nil {
		return err
	}
	c.note("Postgres stopped for %s; %s SIGKILLed after it came back %s, restarted after %s", backlog, g.name, how, down)
	return nil
}

// backlogBatch is how many pending events make a reconciler's open
// transaction a batch of the backlog rather than a leftover.
const backlogBatch = 50

// gatewayMidBatch returns a gateway whose reconciler is writing a batch
// of at least backlogBatch events now, and that batch's size; -1: none.
func (w *world) gatewayMidBatch() (int, int64) {
	ctx, cancel := ctxTimeout(time.Second)
	defer cancel()
	names := make([]string, len(w.gws))
	for i, g := range w.gws {
		names[i] = g.name
	}
	rows, err := w.db.Query(ctx, `SELECT DISTINCT application_name FROM pg_stat_activity
		WHERE application_name = ANY($1) AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()`, names)
	if err != nil {
		return -1, 0
	}
	open := map[string]bool{}
	for rows.Next() {
		var name string
		if rows.Scan(&name) == nil {
			open[name] = true
		}
	}
	rows.Close()
	if len(open) == 0 {
		return -1, 0
	}
	// A reconciler reads every shard's stream, in a batch (and a
	// transaction) per shard: its largest pending count is its largest batch.
	pending := map[string]int64{}
	for _, sh := range w.keys.Shards() {
		p, err := w.redis.client.XPending(ctx, sh.Events(), "reconciler").Result()
		if redis.HasErrorPrefix(err, "NOGROUP") {
			continue // no reconciler read this shard yet
		}
		if err != nil {
			return -1, 0
		}
		for name, n := range p.Consumers {
			pending[name] = max(pending[name], n)
		}
	}
	for i, g := range w.gws {
		if open[g.name] && pending[g.name] >= backlogBatch {
			return i, pending[g.name]
		}
	}
	return -1, 0
}
