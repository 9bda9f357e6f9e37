package metering_test

// The test fixture: world is one test's isolated stores (a Postgres
// schema, a Redis prefix, an engine on a settable clock) with the helpers
// the tests build and inspect them with. Every world method is here, except
// the steps of the randomized reservation model (random_reserve_test.go),
// which belong to that model.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// --- Building: the stores, projects, users ---

// world is one test's stores and engine, with its context.
type world struct {
	*meteringtest.Bundle
	ctx context.Context
}

func newWorld(t *testing.T, start time.Time) *world {
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(start)})
	return &world{Bundle: b, ctx: context.Background()}
}

// oneStreamWorld is newWorld with its keys in one shard whatever
// TOLLGATE_TEST_REDIS_SHARDS says: for tests of how the reconciler works
// one stream, which count the entries of a batch.
func oneStreamWorld(t *testing.T, start time.Time) *world {
	b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(start), RedisShards: 1})
	return &world{Bundle: b, ctx: context.Background()}
}

func (w *world) project(t *testing.T, spec metering.ProjectSpec) metering.Project {
	t.Helper()
	p, err := w.Engine.CreateProject(w.ctx, "test", spec)
	require.NoError(t, err)
	return p
}

func (w *world) user(t *testing.T, spec metering.UserSpec) string {
	t.Helper()
	_, key, err := w.Engine.CreateUser(w.ctx, "test", spec)
	require.NoError(t, err)
	return key
}

func (w *world) charge(t *testing.T, key string, cost metering.Credits) metering.ChargeResult {
	t.Helper()
	res, err := w.Engine.Charge(w.ctx, key, cost, "GET /test")
	require.NoError(t, err)
	return res
}

func (w *world) view(t *testing.T, name string) metering.UserView {
	t.Helper()
	v, err := w.Engine.GetUser(w.ctx, name)
	require.NoError(t, err)
	return v
}

// --- Reading Redis and Postgres ---

// pgInt runs a query answering one integer (coalesced by the caller).
func (w *world) pgInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var v int64
	require.NoError(t, w.DB.QueryRow(w.ctx, sql, args...).Scan(&v), sql)
	return v
}

// redisUser reads a user's raw balance fields from Redis.
func (w *world) redisUser(t testing.TB, id int64) map[string]int64 {
	t.Helper()
	names := []string{"a", "ap", "pu", "aw", "pr", "gm"}
	vals, err := w.Redis.HMGet(w.ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, id), id).User(id), names...).Result()
	require.NoError(t, err)
	out := map[string]int64{}
	for i, n := range names {
		s, ok := vals[i].(string)
		require.Truef(t, ok, "user %d: Redis field %s missing", id, n)
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, "field %s=%q", n, s)
		out[n] = v
	}
	return out
}

func (w *world) drainAndCheck(t *testing.T) {
	t.Helper()
	w.Drain(t)
	w.AssertConsistent(t)
}

// --- Variable cost ---

// reserveWorld is a project with a daily allowance and a pool, and one
// member u holding some of every bucket.
func reserveWorld(t *testing.T) (*world, string) {
	t.Helper()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(10), Period: metering.PeriodDaily,
		PoolEnabled: true, PoolBalance: cr(100), PoolPerUserLimit: ptr(cr(10))})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p", InitialCredits: cr(10), Purchased: cr(10)})
	_, err := w.Engine.PutPrice(w.ctx, "test", metering.Price{Model: "m1",
		InputPerMillion: cr(1), OutputPerMillion: cr(2)})
	require.NoError(t, err)
	return w, key
}

func (w *world) reserve(t *testing.T, r metering.ReserveRequest) *metering.Reservation {
	t.Helper()
	if r.Request == "" {
		r.Request = "POST /v1/chat/completions"
	}
	res, err := w.Engine.Reserve(w.ctx, r)
	require.NoError(t, err)
	return res
}

func (w *world) settle(t *testing.T, r *metering.Reservation, o metering.Outcome) metering.SettleResult {
	t.Helper()
	res, err := w.Engine.Settle(w.ctx, r, o)
	require.NoError(t, err)
	return res
}

// raw reads u's stored balances and the pool, as Redis holds them.
func (w *world) balances(t *testing.T) (user map[string]int64, pool int64) {
	t.Helper()
	v := w.view(t, "u")
	pb, err := w.Redis.HGet(w.ctx, w.Engine.Keys().ProjectShard(v.ProjectID).Project(v.ProjectID), "pb").Int64()
	require.NoError(t, err)
	return w.redisUser(t, v.ID), pb
}

// --- The event stream and the reconciler ---

func (w *world) reconciler(t *testing.T, cfg metering.ReconcilerConfig) *metering.Reconciler {
	t.Helper()
	if cfg.Block == 0 {
		cfg.Block = 10 * time.Millisecond
	}
	r, err := w.Engine.NewReconciler(cfg)
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	return r
}

func (w *world) streamLen(t *testing.T) int64 {
	t.Helper()
	n := w.tryStreamLen()
	require.GreaterOrEqual(t, n, int64(0), "stream length")
	return n
}

func (w *world) pendingFor(t *testing.T, consumer string) int64 {
	t.Helper()
	n, err := w.tryPending(consumer)
	require.NoError(t, err)
	return n
}

// The try* helpers answer -1 on error, for require.Eventually conditions
// (which run in another goroutine, where require must not be used).

func (w *world) tryPending(consumer string) (int64, error) {
	total := int64(0)
	for _, sh := range w.Engine.Keys().Shards() {
		p, err := w.Redis.XPendingExt(w.ctx, &redis.XPendingExtArgs{Stream: sh.Events(), Group: group,
			Start: "-", End: "+", Count: 100000, Consumer: consumer}).Result()
		if err != nil && !strings.HasPrefix(err.Error(), "NOGROUP") {
			return -1, err
		}
		total += int64(len(p))
	}
	return total, nil
}

// tryStreamLen is the length of every shard's stream together.
func (w *world) tryStreamLen() int64 {
	return w.shardsSum(func(sh *metering.ShardKeys) *redis.IntCmd { return w.Redis.XLen(w.ctx, sh.Events()) })
}

// shardsSum adds up a count over every shard (-1 if one fails).
func (w *world) shardsSum(count func(*metering.ShardKeys) *redis.IntCmd) int64 {
	total := int64(0)
	for i := range w.Engine.Keys().Shards() {
		n, err := count(w.Engine.Keys().Shard(i)).Result()
		if err != nil {
			return -1
		}
		total += n
	}
	return total
}

// streamEntries are every shard's stream entries, shard by shard.
func (w *world) streamEntries(t testing.TB) []redis.XMessage {
	t.Helper()
	var all []redis.XMessage
	for _, sh := range w.Engine.Keys().Shards() {
		msgs, err := w.Redis.XRange(w.ctx, sh.Events(), "-", "+").Result()
		require.NoError(t, err)
		all = append(all, msgs...)
	}
	return all
}

func (w *world) tryInt(sql string) int64 {
	var v int64
	if err := w.DB.QueryRow(w.ctx, sql).Scan(&v); err != nil {
		return -1
	}
	return v
}

// pgSnapshot is every balance and the ledger size in Postgres.
func (w *world) pgSnapshot(t *testing.T) string {
	t.Helper()
	rows, err := w.DB.Query(w.ctx, `
		SELECT 'u', username, awarded, purchased, allowance_remaining, allowance_period, pool_used, grant_month FROM users
		UNION ALL SELECT 'p', name, pool_balance, 0, 0, 0, 0, 0 FROM projects
		UNION ALL SELECT 'e', kind, count(*), sum(cost), sum(d_allowance + d_pool + d_awarded + d_purchased), sum(d_pool_used), 0, 0 FROM events GROUP BY kind
		ORDER BY 1, 2`)
	require.NoError(t, err)
	defer rows.Close()
	out := ""
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		out += fmt.Sprintln(vals...)
	}
	require.NoError(t, rows.Err())
	return out
}

// xadd appends an entry straight to the event stream, as a buggy or older
// gateway (or anything else with Redis access) could.
func (w *world) xadd(t *testing.T, fields ...any) string {
	t.Helper()
	id, err := w.Redis.XAdd(w.ctx, &redis.XAddArgs{Stream: w.Engine.Keys().Shard(0).Events(), Values: fields}).Result()
	require.NoError(t, err)
	return id
}

// xaddAdjust appends an awarded-credits adjustment of user uid and makes
// the same change to the Redis balance, as adjust_user.lua would, so that the
// ledger must record it for Redis and Postgres to agree.
func (w *world) xaddAdjust(t *testing.T, uid int64, eventID string, delta int64, fields ...any) string {
	t.Helper()
	require.NoError(t, w.Redis.HIncrBy(w.ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, uid), uid).User(uid), "aw", delta).Err())
	return w.xadd(t, append([]any{"id", eventID, "k", "adjust", "t", strconv.FormatInt(monday.UnixMilli(), 10),
		"u", strconv.FormatInt(uid, 10), "aw", strconv.FormatInt(delta, 10)}, fields...)...)
}

// observedEngine is another engine over w's stores whose log the test reads.
func (w *world) observedEngine(t *testing.T) (*metering.Engine, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg := w.Config
	cfg.Logger = zap.New(core)
	e, err := metering.NewEngine(w.Redis, w.DB, cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e, logs
}

func (w *world) deadLetters(t *testing.T) []metering.DeadLetter {
	t.Helper()
	letters, next, err := w.Engine.ListDeadLetters(w.ctx, 1000, "")
	require.NoError(t, err)
	require.Empty(t, next)
	return letters
}

// --- Invariants: the ledger against Redis, the rollup against the ledger ---

// rollupMismatches compares the daily rollup with the same sums computed
// from the ledger's usage, hold, void and lease events (requests from
// usage events only, credits from usage and void events, bucket columns
// netting them all); it returns the rows that differ.
func (w *world) rollupMismatches(t testing.TB) []string {
	t.Helper()
	rows, err := w.DB.Query(w.ctx, `
		WITH from_events AS (
			SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, user_id, coalesce(project_id, 0) AS project_id,
				coalesce(model, '') AS model, max(username) AS username, coalesce(max(project_name), '') AS project_name,
				count(*) FILTER (WHERE kind = 'usage') AS requests, coalesce(sum(cost) FILTER (WHERE kind IN ('usage', 'void')), 0) AS credits,
				-sum(d_allowance) AS allowance, -sum(d_pool) AS pool, -sum(d_awarded) AS awarded, -sum(d_purchased) AS purchased
			FROM events WHERE kind IN ('usage', 'hold', 'void', 'lease', 'lease_end') GROUP BY 1, 2, 3, 4),
		rollup AS (
			SELECT day, user_id, project_id, model, username, project_name, requests::numeric, credits::numeric,
				allowance::numeric, pool::numeric, awarded::numeric, purchased::numeric FROM usage_daily)
		(SELECT 'events', * FROM (SELECT * FROM from_events EXCEPT SELECT * FROM rollup) a)
		UNION ALL
		(SELECT 'rollup', * FROM (SELECT * FROM rollup EXCEPT SELECT * FROM from_events) b)`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		out = append(out, fmt.Sprint(v...))
	}
	require.NoError(t, rows.Err())
	return out
}

// ledgerUsage sums the user's usage events in Postgres.
type ledgerUsage struct {
	events                 int64
	cost, a, pl, aw, pr, t int64
}

func (w *world) ledgerUsage(t *testing.T, userID int64) ledgerUsage {
	t.Helper()
	var l ledgerUsage
	require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT count(*), coalesce(sum(cost), 0), coalesce(sum(d_allowance), 0),
		coalesce(sum(d_pool), 0), coalesce(sum(d_awarded), 0), coalesce(sum(d_purchased), 0),
		coalesce(sum(d_allowance + d_pool + d_awarded + d_purchased), 0)
		FROM events WHERE kind = 'usage' AND user_id = $1`, userID).
		Scan(&l.events, &l.cost, &l.a, &l.pl, &l.aw, &l.pr, &l.t))
	return l
}

// checkLedger verifies the durability invariant at this instant: for every
// user and pool, Postgres + the events still waiting in the stream (not yet
// in the ledger) = Redis. It also insists that every waiting event has an
// id of its own: an id already in the ledger for another event would make
// the reconciler drop it.
func (w *world) checkLedger(t *testing.T, ctx string) {
	t.Helper()
	msgs := w.streamEntries(t)
	type ev struct {
		kind                  string
		u, p                  int64
		a, pl, aw, pr, pu     int64
		ap, gm                int64
		hasAp, hasGm, applied bool
	}
	num := func(v map[string]any, f string) int64 {
		s, _ := v[f].(string)
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, "%s: stream field %s=%q", ctx, f, s)
		return n
	}
	events := map[string]*ev{}
	var ids []string
	add := func(id string, e *ev) {
		if prev, dup := events[id]; dup {
			t.Fatalf("%s: event id %q used by a %s and a %s event in the stream", ctx, id, prev.kind, e.kind)
		}
		events[id] = e
		ids = append(ids, id)
	}
	for _, m := range msgs {
		if _, packed := m.Values["ev"]; packed {
			// A lease's flush: usage events without amounts, which only
			// need ids of their own here.
			evs, err := metering.EntryEventsForTest(m.Values)
			require.NoError(t, err, "%s: packed entry %s", ctx, m.ID)
			for _, x := range evs {
				add(x.ID, &ev{kind: x.Kind, u: x.UserID, p: x.ProjectID, a: int64(x.Allowance), pl: int64(x.Pool),
					aw: int64(x.Awarded), pr: int64(x.Purchased), pu: int64(x.PoolUsed)})
			}
			continue
		}
		id, _ := m.Values["id"].(string)
		e := &ev{kind: m.Values["k"].(string), u: num(m.Values, "u"), p: num(m.Values, "p"),
			a: num(m.Values, "a"), pl: num(m.Values, "pl"), aw: num(m.Values, "aw"), pr: num(m.Values, "pr"), pu: num(m.Values, "pu")}
		if _, ok := m.Values["ap"]; ok {
			e.ap, e.hasAp = num(m.Values, "ap"), true
		}
		if _, ok := m.Values["gm"]; ok {
			e.gm, e.hasGm = num(m.Values, "gm"), true
		}
		add(id, e)
	}
	rows, err := w.DB.Query(w.ctx, `SELECT event_id, kind, coalesce(user_id, 0), d_allowance, d_pool, d_awarded, d_purchased, d_pool_used
		FROM events WHERE event_id = ANY($1)`, ids)
	require.NoError(t, err)
	for rows.Next() {
		var id, kind string
		var u, a, pl, aw, pr, pu int64
		require.NoError(t, rows.Scan(&id, &kind, &u, &a, &pl, &aw, &pr, &pu))
		e := events[id]
		if e.kind != kind || e.u != u || e.a != a || e.pl != pl || e.aw != aw || e.pr != pr || e.pu != pu {
			t.Fatalf("%s: stream event %q (%s user %d a=%d pl=%d aw=%d pr=%d pu=%d) is not the ledger's event of that id (%s user %d a=%d pl=%d aw=%d pr=%d pu=%d): the ledger will drop it",
				ctx, id, e.kind, e.u, e.a, e.pl, e.aw, e.pr, e.pu, kind, u, a, pl, aw, pr, pu)
		}
		e.applied = true
	}
	require.NoError(t, rows.Err())

	type bal struct{ a, ap, pu, aw, pr, gm int64 }
	users := map[int64]*bal{}
	urows, err := w.DB.Query(w.ctx, `SELECT id, allowance_remaining, allowance_period, pool_used, awarded, purchased, grant_month FROM users`)
	require.NoError(t, err)
	for urows.Next() {
		var id int64
		b := &bal{}
		require.NoError(t, urows.Scan(&id, &b.a, &b.ap, &b.pu, &b.aw, &b.pr, &b.gm))
		users[id] = b
	}
	require.NoError(t, urows.Err())
	pools := map[int64]int64{}
	prows, err := w.DB.Query(w.ctx, `SELECT id, pool_balance FROM projects`)
	require.NoError(t, err)
	for prows.Next() {
		var id, pb int64
		require.NoError(t, prows.Scan(&id, &pb))
		pools[id] = pb
	}
	require.NoError(t, prows.Err())

	for _, id := range ids {
		e := events[id]
		if e.applied || e.kind == metering.KindPark || e.kind == metering.KindResume {
			continue // parked allowances are not the user's current balances
		}
		if e.p != 0 {
			pools[e.p] += e.pl
		}
		if b := users[e.u]; e.u != 0 && b != nil {
			b.a += e.a
			b.pu += e.pu
			b.aw += e.aw
			b.pr += e.pr
			if e.hasAp {
				b.ap = max(b.ap, e.ap)
			}
			if e.hasGm {
				b.gm = max(b.gm, e.gm)
			}
		}
	}
	for id, b := range users {
		raw := w.redisUser(t, id)
		require.Equal(t, []int64{raw["a"], raw["ap"], raw["pu"], raw["aw"], raw["pr"], raw["gm"]},
			[]int64{b.a, b.ap, b.pu, b.aw, b.pr, b.gm}, "%s: user %d: Postgres + unreconciled events must equal Redis [a ap pu aw pr gm]", ctx, id)
	}
	for id, pb := range pools {
		v, err := w.Redis.HGet(w.ctx, w.Engine.Keys().ProjectShard(id).Project(id), "pb").Int64()
		require.NoError(t, err)
		require.Equal(t, v, pb, "%s: project %d: Postgres + unreconciled events must equal the Redis pool", ctx, id)
	}
}

// userProject is the project of user id as Postgres has it (0: none),
// which with the user id says the shard of its Redis keys.
func userProject(t testing.TB, db *pgxpool.Pool, id int64) int64 {
	t.Helper()
	var pid int64
	require.NoError(t, db.QueryRow(context.Background(), `SELECT coalesce(project_id, 0) FROM users WHERE id = $1`, id).Scan(&pid))
	return pid
}
