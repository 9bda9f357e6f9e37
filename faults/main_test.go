//go:build faults

package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/metering"
)

var (
	flagCycles = flag.Int("faults.cycles", 22, "number of randomized fault cycles (22: each fault twice)")
	flagSeed   = flag.Int64("faults.seed", 0, "seed of the whole run (0: from the clock); the same seed draws the same cycles")
	flagCycle  = flag.String("faults.cycle", "", "run one cycle again, as printed: <fault>:<seed>")
	flagOnly   = flag.String("faults.only", "", "comma-separated faults to draw from (default: all)")
	flagSkip   = flag.String("faults.skip", "", "comma-separated faults not to draw")
	flagBin    = flag.String("faults.bin", "", "the tollgate binary to test (default: build ../cmd/tollgate)")
	// flagShards is how many shards the gateways split their Redis keys
	// into (redis_shards): more than one puts the sharded layout under the
	// faults (a user's keys in its shard, a reconciler, sweeper and heal
	// per shard, transfers between shards in two steps). The checks read
	// each key in its shard, or every shard.
	flagShards = flag.Int("faults.redis-shards", 4, "redis_shards of the gateways (1: one hash tag)")
	flagKeep   = flag.Bool("faults.keep", false, "keep the processes' logs and data when the run passes")
)

// world is everything the suite runs: private Redis and Postgres, the fake
// upstream and three gateways sharing them.
type world struct {
	t          *testing.T
	base       string
	redis      *redisServer
	pg         *pgCluster
	db         *pgxpool.Pool // the suite's own connection, for checks
	up         *upstream
	gws        []*gateway
	keys       metering.RedisKeys
	pepper     string
	adminToken string
	price      metering.Price // the chat model's price now
	nextN      atomic.Int64
	deadSeen   int // entries of the dead-letter stream already reported
}

func TestFaults(t *testing.T) {
	if *flagCycles < 1 {
		t.Fatal("-faults.cycles must be at least 1")
	}
	if *flagShards < 1 || *flagShards > metering.MaxRedisShards {
		t.Fatalf("-faults.redis-shards must be from 1 to %d", metering.MaxRedisShards)
	}
	plan, err := planCycles(*flagCycles, *flagSeed, *flagCycle, *flagOnly, *flagSkip)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	start := time.Now()
	var results []*cycle
	for i, p := range plan {
		c := w.runCycle(i+1, len(plan), p)
		results = append(results, c)
	}
	final, tt := w.finalTransfers(results)
	printTotals(results, time.Since(start))
	printTransferTotals(tt)
	failed := 0
	for _, v := range final {
		failed++
		say("  final: %s", v)
		t.Errorf("after the last cycle: %s", v)
	}
	for _, c := range results {
		for _, v := range c.violations {
			failed++
			if failed <= 200 {
				t.Errorf("cycle %d (%s, rerun with -faults.cycle=%s:%d): %s", c.index, c.fault.name, c.fault.name, c.seed, v)
			}
		}
	}
	if failed > 200 {
		t.Errorf("... and %d more violations", failed-200)
	}
}

// say prints a progress line at once (go test -v shows it as it comes).
func say(format string, args ...any) {
	fmt.Printf("%s faults: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func newWorld(t *testing.T) *world {
	base, err := os.MkdirTemp("", "tollgate-faults-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as another user, which must reach its directory.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			say("logs and data kept in %s", base)
			return
		}
		os.RemoveAll(base)
	})
	if err := os.MkdirAll(filepath.Join(base, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	keys, err := metering.NewRedisKeys(redisPrefix, *flagShards)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, base: base, keys: keys, pepper: randomHex(16), adminToken: randomHex(16)}
	say("starting private PostgreSQL, Redis, upstream and %d gateways in %s", len(gatewayNames), base)

	if w.pg, err = newPostgres(base); err != nil {
		t.Fatal(err)
	}
	if err := w.pg.start(); err != nil {
		w.pg.stop()
		t.Fatal(err)
	}
	t.Cleanup(w.pg.stop)
	if w.db, err = pgxpool.New(context.Background(), w.pg.url(pgDatabase)+"&pool_max_conns=4"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.db.Close)

	if w.redis, err = newRedis(base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.redis.close)
	if err := w.redis.start(); err != nil {
		t.Fatal(err)
	}

	if w.up, err = newUpstream(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.up.close)

	bin := *flagBin
	if bin == "" {
		say("building ../cmd/tollgate")
		if bin, err = buildGateway(base); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range gatewayNames {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		adminPort, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		g := &gateway{name: name, port: port, adminPort: adminPort, bin: bin, logDir: filepath.Join(base, "logs"),
			cfgPath: filepath.Join(base, name+".Caddyfile")}
		if err := w.writeConfig(g, baseRoutes); err != nil {
			t.Fatal(err)
		}
		w.gws = append(w.gws, g)
		t.Cleanup(func() {
			if g.up() {
				g.p.kill()
			}
		})
		// One after the other: the first applies the migrations.
		if err := g.start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.putPrice(metering.Price{Model: chatModel, InputPerMillion: inputRates[0], OutputPerMillion: outputRates[0]}); err != nil {
		t.Fatal(err)
	}
	var bases []string
	for _, g := range w.gws {
		bases = append(bases, g.name+" "+g.base())
	}
	say("ready: redis %s, postgres 127.0.0.1:%d, upstream %s, gateways %s",
		w.redis.addr(), w.pg.port, w.up.addr(), strings.Join(bases, ", "))
	return w
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// healAll brings back whatever a fault left down: Redis, Postgres, the
// gateways. A failure to come back is a violation of the cycle.
func (w *world) healAll(c *cycle) {
	if w.redis.p.exited() {
		c.violate("recovery", "Redis was down at the end of the cycle")
		if err := w.redis.start(); err != nil {
			w.t.Fatalf("cannot restart Redis: %v", err)
		}
	}
	if w.pg.p.exited() {
		c.violate("recovery", "Postgres was down at the end of the cycle")
		if err := w.pg.start(); err != nil {
			w.t.Fatalf("cannot restart Postgres: %v", err)
		}
	}
	for i, g := range w.gws {
		if !g.up() {
			if g.p != nil && !c.killed(i) {
				c.violate("recovery", fmt.Sprintf("%s died by itself: %s", g.name, oneLine(g.p.tail(20))))
			}
			if err := g.start(); err != nil {
				w.t.Fatalf("cannot restart %s: %v", g.name, err)
			}
		}
	}
}

func (w *world) gwIndex(name string) int {
	for i, g := range w.gws {
		if g.name == name {
			return i
		}
	}
	return -1
}
