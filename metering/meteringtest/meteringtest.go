// Package meteringtest sets up isolated real Redis and Postgres state for
// tests: a fresh Postgres schema and a fresh Redis key prefix per test,
// removed when the test ends. It never mocks either store; when one is not
// reachable the test fails and says what to start.
package meteringtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/tollgate/tollgate/metering"
)

const (
	defaultRedisURL = "redis://127.0.0.1:6379/0"
	defaultDBURL    = "postgres://postgres@127.0.0.1:5432/tollgate_test?sslmode=disable"
)

// RedisURL is the test Redis (TOLLGATE_TEST_REDIS_URL).
func RedisURL() string { return envOr("TOLLGATE_TEST_REDIS_URL", defaultRedisURL) }

// DatabaseURL is the test Postgres database (TOLLGATE_TEST_DATABASE_URL).
func DatabaseURL() string { return envOr("TOLLGATE_TEST_DATABASE_URL", defaultDBURL) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Clock is a settable clock for period tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

func NewClock(t time.Time) *Clock { return &Clock{now: t} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Bundle is one test's isolated world.
type Bundle struct {
	Engine *metering.Engine
	Config metering.Config
	Redis  *redis.Client
	DB     *pgxpool.Pool
	Schema string
	Prefix string
	Clock  *Clock
	// redisURL is the server Redis connects to.
	redisURL string
}

// Options adjust the engine a bundle builds.
type Options struct {
	// Clock, when set, drives the engine; else the real time.
	Clock *Clock
	// KeyEncryptionKey enables key reveal.
	KeyEncryptionKey []byte
	// Leases configures credit leases (zero: the defaults).
	Leases metering.LeaseConfig
	// RedisURL is the Redis server the bundle uses (empty: the test
	// Redis, RedisURL()). A test that disturbs the whole server (SCRIPT
	// FLUSH, a restart) gives its own, e.g. from StartRedisServer, so that
	// no other test sees it.
	RedisURL string
	// DatabaseURL is the Postgres server the bundle's schema is made in
	// (empty: the test Postgres, DatabaseURL()).
	DatabaseURL string
	// RedisShards splits the bundle's keys into shards (metering.Config's
	// RedisShards); 0: TestShards().
	RedisShards int
}

// TestShards is the shard count bundles use unless a test sets its own:
// TOLLGATE_TEST_REDIS_SHARDS, or 1. make test runs the metering tests
// once more with several shards, so that every test also checks the
// sharded layout.
func TestShards() int {
	n, err := strconv.Atoi(os.Getenv("TOLLGATE_TEST_REDIS_SHARDS"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// New builds a migrated schema, a Redis prefix and an engine over them.
func New(t testing.TB, opts Options) *Bundle {
	t.Helper()
	ctx := context.Background()
	b := &Bundle{Schema: "t_" + randomHex(6), Prefix: "test-" + randomHex(6), Clock: opts.Clock}
	if opts.RedisShards == 0 {
		opts.RedisShards = TestShards()
	}
	fence, err := metering.NewRedisFence(b.Prefix, opts.RedisShards)
	if err != nil {
		t.Fatal(err)
	}
	// As the gateway does: every new connection checks that Redis did not
	// restart unverified.
	if opts.RedisURL == "" {
		opts.RedisURL = RedisURL()
	}
	b.redisURL = opts.RedisURL
	b.Redis = redisClientAt(t, opts.RedisURL, func(o *redis.Options) {
		o.OnConnect = fence.OnConnect
		o.ClientName = b.Prefix // so RestartRedis can find its connections
	})
	if opts.DatabaseURL == "" {
		opts.DatabaseURL = DatabaseURL()
	}
	b.DB = postgresAt(t, opts.DatabaseURL, b.Schema)
	if _, err := metering.Migrate(ctx, b.DB); err != nil {
		t.Fatalf("migrate test schema: %v", err)
	}
	b.Config = metering.Config{RedisPrefix: b.Prefix, RedisShards: opts.RedisShards, KeyPepper: []byte("test-pepper"),
		KeyEncryptionKey: opts.KeyEncryptionKey, Fence: fence, Leases: opts.Leases, Logger: zaptest.NewLogger(t)}
	if b.Clock != nil {
		b.Config.Now = b.Clock.Now
	}
	b.Engine = b.NewEngine(t)
	t.Cleanup(func() { cleanRedis(opts.RedisURL, b.Prefix) })
	// A fresh prefix has never been verified: do it now, as a gateway's
	// first request would.
	if err := b.Engine.VerifyRedis(ctx); err != nil {
		t.Fatalf("verify the test Redis: %v", err)
	}
	return b
}

// WithShards is the bundle as gateways configured with another shard
// count (redis_shards) see it: the same Redis, Postgres and key prefix, a
// client fenced for that count, and an engine over it, verified (which
// moves the keys into the new layout).
func (b *Bundle) WithShards(t testing.TB, shards int) *Bundle {
	t.Helper()
	fence, err := metering.NewRedisFence(b.Prefix, shards)
	if err != nil {
		t.Fatal(err)
	}
	nb := *b
	nb.Redis = redisClientAt(t, b.redisURL, func(o *redis.Options) {
		o.OnConnect = fence.OnConnect
		o.ClientName = b.Prefix
	})
	nb.Config.RedisShards, nb.Config.Fence = shards, fence
	nb.Engine = nb.NewEngine(t)
	if err := nb.Engine.VerifyRedis(context.Background()); err != nil {
		t.Fatalf("verify Redis with %d shards: %v", shards, err)
	}
	return &nb
}

// NewEngine builds another engine over the same stores, as a second gateway would.
func (b *Bundle) NewEngine(t testing.TB) *metering.Engine {
	e, err := metering.NewEngine(b.Redis, b.DB, b.Config)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// Redis connects to the test Redis or fails the test saying what to start.
func Redis(t testing.TB) *redis.Client { return redisClient(t, nil) }

func redisClient(t testing.TB, configure func(*redis.Options)) *redis.Client {
	t.Helper()
	return redisClientAt(t, RedisURL(), configure)
}

func redisClientAt(t testing.TB, url string, configure func(*redis.Options)) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("Redis URL for tests (TOLLGATE_TEST_REDIS_URL): %v", err)
	}
	opt.PoolSize = 64
	// Reachability first, on a plain connection: a fenced client's first
	// connection is refused until its engine has verified the server.
	plain := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = plain.Ping(ctx).Err()
	plain.Close()
	if err != nil {
		t.Fatalf("Redis at %s is not reachable (%v): start one (e.g. `redis-server --daemonize yes`) or set TOLLGATE_TEST_REDIS_URL; `make test` starts one for you", opt.Addr, err)
	}
	if configure != nil {
		configure(opt)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Postgres creates schema (and the database if missing) and returns a pool
// whose connections use it.
func Postgres(t testing.TB, schema string) *pgxpool.Pool {
	t.Helper()
	return postgresAt(t, DatabaseURL(), schema)
}

func postgresAt(t testing.TB, dbURL, schema string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ensureDatabase(ctx, dbURL); err != nil {
		t.Fatalf("Postgres for tests (%s) is not usable: %v\nstart PostgreSQL or set TOLLGATE_TEST_DATABASE_URL; `make test` starts one for you", redact(dbURL), err)
	}
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to test Postgres: %v", err)
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	admin.Close(ctx)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dbURL); err == nil {
			c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	return pool
}

var (
	ensureMu   sync.Mutex
	ensureDone = map[string]bool{}
)

// ensureDatabase creates the test database when the server has none by that name.
func ensureDatabase(ctx context.Context, dbURL string) error {
	ensureMu.Lock()
	defer ensureMu.Unlock()
	if ensureDone[dbURL] {
		return nil
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err == nil {
		c.Close(ctx)
		ensureDone[dbURL] = true
		return nil
	}
	if !strings.Contains(err.Error(), "does not exist") {
		return err
	}
	u, perr := url.Parse(dbURL)
	if perr != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	c, err = pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil && !strings.Contains(err.Error(), "already exists") && !strings.Contains(err.Error(), "duplicate key") {
		return err
	}
	ensureDone[dbURL] = true
	return nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// cleanRedis removes a bundle's keys, on a connection of its own: the
// bundle's client may be fenced if the test restarted Redis.
func cleanRedis(url, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opt, err := redis.ParseURL(url)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if keys := prefixKeys(ctx, c, prefix); len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Drain runs a reconciler until the stream is empty.
func (b *Bundle) Drain(t testing.TB) {
	t.Helper()
	r, err := b.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "drain", Block: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; ; i++ {
		n, err := r.RunOnce(ctx)
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if n == 0 {
			left := int64(0)
			for _, sh := range b.Engine.Keys().Shards() {
				n, err := b.Redis.XLen(ctx, sh.Events()).Result()
				if err != nil {
					t.Fatal(err)
				}
				left += n
			}
			if left == 0 {
				return
			}
		}
		if i > 100000 {
			t.Fatal("stream did not drain")
		}
	}
}

// AssertConsistent checks, after Drain, that Postgres holds exactly Redis's
// balances for every user and pool that Redis has loaded.
func (b *Bundle) AssertConsistent(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	rows, err := b.DB.Query(ctx, `SELECT id, coalesce(project_id, 0), username, awarded, purchased, allowance_remaining, allowance_period, pool_used, grant_month FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	type userRow struct {
		id, pid               int64
		name                  string
		aw, pr, a, ap, pu, gm int64
	}
	var users []userRow
	for rows.Next() {
		var u userRow
		if err := rows.Scan(&u.id, &u.pid, &u.name, &u.aw, &u.pr, &u.a, &u.ap, &u.pu, &u.gm); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	parked := b.parkedInLedger(t)
	for _, u := range users {
		f, err := b.Redis.HMGet(ctx, b.Engine.Keys().ShardOf(u.pid, u.id).User(u.id), "aw", "pr", "a", "ap", "pu", "gm", "x").Result()
		if err != nil {
			t.Fatal(err)
		}
		if f[0] == nil {
			continue // never loaded into Redis: Postgres is the whole truth
		}
		got := fmt.Sprintln(f[:6]...)
		want := fmt.Sprintln(u.aw, u.pr, u.a, u.ap, u.pu, u.gm)
		if got != want {
			t.Errorf("user %s: Redis [aw pr a ap pu gm] = %s, Postgres = %s", u.name, got, want)
		}
		x, _ := f[6].(string)
		if got, want := ParkedEntries(x), parked[u.id]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("user %s: what it left in other projects: Redis %q, Postgres %q", u.name, got, want)
		}
	}
	prow, err := b.DB.Query(ctx, `SELECT id, name, pool_balance FROM projects`)
	if err != nil {
		t.Fatal(err)
	}
	defer prow.Close()
	for prow.Next() {
		var id, bal int64
		var name string
		if err := prow.Scan(&id, &name, &bal); err != nil {
			t.Fatal(err)
		}
		v, err := b.Redis.HGet(ctx, b.Engine.Keys().ProjectShard(id).Project(id), "pb").Int64()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if v != bal {
			t.Errorf("project %s: Redis pool %d, Postgres %d", name, v, bal)
		}
	}
}

// ParkedEntries splits a user hash's field 'x' (what the user left in
// projects it moved out of: "<project>:<allowance>:<period>:<pool drawn>"
// entries joined by ',') into its entries, sorted.
func ParkedEntries(x string) []string {
	var out []string
	for _, e := range strings.Split(x, ",") {
		if e != "" {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// parkedInLedger reads parked_allowances: each user's held entries, as
// ParkedEntries gives Redis's. A row no longer held must be empty.
func (b *Bundle) parkedInLedger(t testing.TB) map[int64][]string {
	t.Helper()
	rows, err := b.DB.Query(context.Background(), `SELECT user_id, project_id, allowance_remaining,
		allowance_period, pool_used, parked FROM parked_allowances`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][]string{}
	for rows.Next() {
		var uid, pid, a, ap, pu, n int64
		if err := rows.Scan(&uid, &pid, &a, &ap, &pu, &n); err != nil {
			t.Fatal(err)
		}
		switch {
		case n == 1:
			out[uid] = append(out[uid], fmt.Sprintf("%d:%d:%d:%d", pid, a, ap, pu))
		case n != 0 || a != 0 || pu != 0:
			t.Errorf("user %d, project %d: parked allowance row (%d %d %d, parked %d) is neither held nor empty", uid, pid, a, ap, pu, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for uid := range out {
		sort.Strings(out[uid])
	}
	return out
}

// RefuseEvents installs a trigger that makes Postgres refuse every event
// row for which the PL/pgSQL condition holds (e.g. "NEW.note = 'x'", or
// "true" for all) with SQLSTATE code, as a constraint (class 23), bad data
// (22) or an outage (53000: insufficient resources) would. The returned
// function removes it; the test's cleanup does too.
func (b *Bundle) RefuseEvents(t testing.TB, condition, code string) (remove func()) {
	t.Helper()
	ctx := context.Background()
	_, err := b.DB.Exec(ctx, `
		CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF `+condition+` THEN
				RAISE EXCEPTION 'refused for the test' USING ERRCODE = '`+code+`';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_events();`)
	if err != nil {
		t.Fatalf("install refuse_events trigger: %v", err)
	}
	var once sync.Once
	remove = func() {
		once.Do(func() {
			if _, err := b.DB.Exec(ctx, `DROP TRIGGER refuse_events ON events; DROP FUNCTION refuse_events()`); err != nil {
				t.Errorf("remove refuse_events trigger: %v", err)
			}
		})
	}
	t.Cleanup(remove)
	return remove
}

// RedisSnapshot is the bundle's Redis keys as they were at one moment.
type RedisSnapshot map[string]string

// SnapshotRedis saves every key of the bundle's prefix (DUMP).
func (b *Bundle) SnapshotRedis(t testing.TB) RedisSnapshot {
	t.Helper()
	ctx := context.Background()
	plain := Redis(t)
	snap := RedisSnapshot{}
	for _, key := range prefixKeys(ctx, plain, b.Prefix) {
		v, err := plain.Dump(ctx, key).Result()
		if err != nil {
			t.Fatalf("dump %s: %v", key, err)
		}
		snap[key] = v
	}
	return snap
}

// RestartRedisFrom emulates the bundle's Redis coming back from an older
// state, as after an OS crash under appendfsync everysec: its keys become
// exactly the snapshot's, and, as a restart would, the server is one
// Tollgate has not verified (its run id no longer matches) and every
// connection the bundle's client holds is closed.
func (b *Bundle) RestartRedisFrom(t testing.TB, snap RedisSnapshot) {
	t.Helper()
	ctx := context.Background()
	plain := Redis(t)
	if keys := prefixKeys(ctx, plain, b.Prefix); len(keys) > 0 {
		if err := plain.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for key, v := range snap {
		if err := plain.RestoreReplace(ctx, key, 0, v).Err(); err != nil {
			t.Fatalf("restore %s: %v", key, err)
		}
	}
	// The shared test server cannot change its run id: forgetting the
	// verified one has the same effect on the fence.
	for _, sh := range b.Engine.Keys().Shards() {
		if err := plain.Del(ctx, sh.Epoch()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	list, err := plain.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(list, "\n") {
		var id string
		mine := false
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if f == "name="+b.Prefix {
				mine = true
			}
		}
		if mine && id != "" {
			_ = plain.Do(ctx, "CLIENT", "KILL", "ID", id).Err()
		}
	}
}

func prefixKeys(ctx context.Context, c *redis.Client, prefix string) []string {
	// "{prefix}…" and the shards' "{prefix.<i>.<n>}…".
	iter := c.Scan(ctx, 0, `\{`+prefix+`[.\}]*`, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys
}

// Seed100kUsers bulk-loads the list benchmarks' world straight into
// Postgres, one statement per table instead of 100,000 admin calls:
// projects p000–p099 (daily allowance, a pool), users user000001–user100000
// (every tenth unassigned, every 17th inactive, varied credits and
// activity) and a key each. Then ANALYZE; VACUUM too when vacuum is set,
// the state autovacuum reaches after a bulk insert (index-only scans need
// its visibility map).
func (b *Bundle) Seed100kUsers(t testing.TB, vacuum bool) {
	t.Helper()
	analyze := "ANALYZE"
	if vacuum {
		analyze = "VACUUM ANALYZE"
	}
	for _, sql := range []string{
		`INSERT INTO projects (name, allowance_amount, allowance_period, pool_enabled, pool_balance)
			SELECT 'p' || lpad(i::text, 3, '0'), 10000000, 'daily', true, 1000000000
			FROM generate_series(0, 99) i`,
		`INSERT INTO users (username, project_id, status, awarded, purchased, last_activity_at, grant_month)
			SELECT 'user' || lpad(i::text, 6, '0'),
				CASE WHEN i % 10 = 0 THEN NULL ELSE (SELECT id FROM projects WHERE name = 'p' || lpad((i % 100)::text, 3, '0')) END,
				CASE WHEN i % 17 = 0 THEN 'inactive' ELSE 'active' END,
				(i * 7919 % 100000) * 1000, (i % 7) * 1000000,
				CASE WHEN i % 3 = 0 THEN NULL ELSE now() - (i % 5000) * interval '1 minute' END,
				24000
			FROM generate_series(1, 100000) i`,
		`INSERT INTO api_keys (user_id, lookup_hash, display_prefix)
			SELECT id, decode(md5('key' || id), 'hex'), 'tg_' || substr(md5(id::text), 1, 4) FROM users`,
		analyze,
	} {
		if _, err := b.DB.Exec(context.Background(), sql); err != nil {
			t.Fatalf("seeding 100,000 users: %v", err)
		}
	}
}
