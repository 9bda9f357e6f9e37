package metering_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// Direct tests of fixed_charge.lua against the real Redis, without an
// Engine: hashes written by hand, the script run through its typed
// boundary, hashes and stream read back.

// scriptWorld is one Redis key prefix for direct script calls.
type scriptWorld struct {
	t    testing.TB
	rdb  *redis.Client
	keys *metering.ShardKeys // the scripts' tests need one shard's names
}

const (
	scriptUserID    = 7
	scriptProjectID = 3
	scriptKeyHash   = "0123456789abcdef0123456789abcdef"
	scriptNowMs     = 1_780_000_000_000
	scriptMonth     = 24318
)

func newScriptWorld(t testing.TB, rdb *redis.Client) *scriptWorld {
	prefix := fmt.Sprintf("test-fc-%d", rand.Int64())
	keys, err := metering.NewRedisKeys(prefix, 1)
	require.NoError(t, err)
	w := &scriptWorld{t: t, rdb: rdb, keys: keys.Shard(0)}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, "{"+prefix+"}:*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return w
}

// put writes the user hash and, when project is not nil, the project hash.
func (w *scriptWorld) put(user, project map[string]string) {
	ctx := context.Background()
	require.NoError(w.t, w.rdb.Del(ctx, w.keys.User(scriptUserID), w.keys.Project(scriptProjectID), w.keys.Events(),
		w.keys.InFlight(scriptUserID), w.keys.Reservation("evt1"), w.keys.Leases(), w.keys.PriceVersion()).Err())
	require.NoError(w.t, w.rdb.HSet(ctx, w.keys.User(scriptUserID), user).Err())
	if project != nil {
		require.NoError(w.t, w.rdb.HSet(ctx, w.keys.Project(scriptProjectID), project).Err())
	}
}

// args is a charge of cost for the user, as of allowance period pstart.
func (w *scriptWorld) args(cost metering.Credits, pstart int64) metering.FixedChargeArgs {
	return metering.FixedChargeArgs{UserKey: w.keys.User(scriptUserID), ProjectKey: w.keys.Project(scriptProjectID),
		EventsKey: w.keys.Events(), KeyHash: scriptKeyHash, UserVersion: "5", ProjectVersion: "9",
		NowMs: scriptNowMs, AllowanceStart: strconv.FormatInt(pstart, 10), Month: strconv.Itoa(scriptMonth),
		Cost: cost, EventID: "evt1", Request: "GET /x", UserID: strconv.Itoa(scriptUserID)}
}

func (w *scriptWorld) user() map[string]string {
	v, err := w.rdb.HGetAll(context.Background(), w.keys.User(scriptUserID)).Result()
	require.NoError(w.t, err)
	return v
}

func (w *scriptWorld) project() map[string]string {
	v, err := w.rdb.HGetAll(context.Background(), w.keys.Project(scriptProjectID)).Result()
	require.NoError(w.t, err)
	return v
}

// tracked is args for a tracked charge with a lease to deadline.
func (w *scriptWorld) tracked(cost metering.Credits, pstart int64) metering.TrackedChargeArgs {
	return metering.TrackedChargeArgs{Charge: w.args(cost, pstart), FlightKey: w.keys.InFlight(scriptUserID),
		RecordKey: w.keys.Reservation("evt1"), DeadlineMs: scriptNowMs + 60_000}
}

// inFlight is the user's in-flight set, member → deadline.
func (w *scriptWorld) inFlight() []redis.Z {
	v, err := w.rdb.ZRangeWithScores(context.Background(), w.keys.InFlight(scriptUserID), 0, -1).Result()
	require.NoError(w.t, err)
	return v
}

// events is the stream's entries' fields, oldest first.
func (w *scriptWorld) events() []map[string]any {
	msgs, err := w.rdb.XRange(context.Background(), w.keys.Events(), "-", "+").Result()
	require.NoError(w.t, err)
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = m.Values
	}
	return out
}

// baseUser is an active partner-less user with a project, nothing due.
func baseUser(fields ...string) map[string]string {
	u := map[string]string{"kh": scriptKeyHash, "v": "5", "st": "1", "exp": "0", "p": strconv.Itoa(scriptProjectID),
		"n": "ann", "a": "100", "ap": "1000", "pu": "0", "aw": "0", "pr": "0", "mg": "0", "gm": "0", "pt": "0"}
	for i := 0; i+1 < len(fields); i += 2 {
		u[fields[i]] = fields[i+1]
	}
	return u
}

func baseProject(fields ...string) map[string]string {
	p := map[string]string{"v": "9", "n": "proj", "amt": "100", "per": "daily", "pe": "0", "pb": "0", "pl": "-1"}
	for i := 0; i+1 < len(fields); i += 2 {
		p[fields[i]] = fields[i+1]
	}
	return p
}

func TestFixedChargeScriptWaterfallUnassigned(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	w.put(baseUser("p", "0", "a", "0", "aw", "5", "pr", "10"), nil)
	ans, err := metering.RunFixedCharge(ctx, w.rdb, w.args(8, 1000))
	require.NoError(t, err)
	require.Equal(t, metering.FixedChargeAnswer{Status: metering.ScriptOK, Remaining: 7,
		Taken: metering.Split{Awarded: 5, Purchased: 3}}, ans)
	u := w.user()
	require.Equal(t, "0", u["aw"])
	require.Equal(t, "7", u["pr"])
	require.Equal(t, []map[string]any{{"id": "evt1", "k": "usage", "t": strconv.Itoa(scriptNowMs), "u": "7", "un": "ann",
		"c": "8", "aw": "-5", "pr": "-3", "rq": "GET /x"}}, w.events())
}

func TestFixedChargeScriptRefillAndPool(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	// The period rolled: allowance back to 100 and pool use to 0, then 120
	// takes the allowance and 20 of the pool (limit 30 per user).
	w.put(baseUser("a", "3", "pu", "25"), baseProject("pe", "1", "pb", "50", "pl", "30"))
	ans, err := metering.RunFixedCharge(ctx, w.rdb, w.args(120, 2000))
	require.NoError(t, err)
	require.Equal(t, metering.FixedChargeAnswer{Status: metering.ScriptOK, Remaining: 10,
		Taken: metering.Split{Allowance: 100, Pool: 20}}, ans)
	u := w.user()
	require.Equal(t, []string{"0", "2000", "20"}, []string{u["a"], u["ap"], u["pu"]})
	require.Equal(t, "30", w.project()["pb"])
	t0 := strconv.Itoa(scriptNowMs)
	require.Equal(t, []map[string]any{
		{"id": "evt1:r", "k": "refill", "t": t0, "u": "7", "un": "ann", "p": "3", "pn": "proj", "ap": "2000", "a": "97", "pu": "-25"},
		{"id": "evt1", "k": "usage", "t": t0, "u": "7", "un": "ann", "p": "3", "pn": "proj",
			"c": "120", "a": "-100", "pl": "-20", "pu": "20", "rq": "GET /x"},
	}, w.events())
}

func TestFixedChargeScriptRefusalsWriteNothing(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		user    map[string]string
		project map[string]string
		change  func(*metering.FixedChargeArgs)
		want    metering.FixedChargeAnswer
	}{
		{"insufficient", baseUser(), baseProject(), nil, metering.FixedChargeAnswer{Status: metering.ScriptInsufficient, Remaining: 100}},
		{"deleted", baseUser("del", "1"), baseProject(), nil, metering.FixedChargeAnswer{Status: metering.ScriptDeleted}},
		{"balances not loaded", map[string]string{"kh": scriptKeyHash, "v": "5", "pt": "0"}, baseProject(), nil,
			metering.FixedChargeAnswer{Status: metering.ScriptNoUser}},
		{"hash without partner flag", func() map[string]string { u := baseUser(); delete(u, "pt"); return u }(), baseProject(), nil,
			metering.FixedChargeAnswer{Status: metering.ScriptNoUser}},
		{"rotated key", baseUser("kh", strings.Repeat("x", 32)), baseProject(), nil, metering.FixedChargeAnswer{Status: metering.ScriptStale}},
		{"user version", baseUser("v", "6"), baseProject(), nil, metering.FixedChargeAnswer{Status: metering.ScriptStale}},
		{"project version", baseUser(), baseProject("v", "10"), nil, metering.FixedChargeAnswer{Status: metering.ScriptStale}},
		{"inactive", baseUser("st", "0"), baseProject(), nil, metering.FixedChargeAnswer{Status: metering.ScriptRefused}},
		{"expired", baseUser("exp", strconv.Itoa(scriptNowMs)), baseProject(), nil, metering.FixedChargeAnswer{Status: metering.ScriptRefused}},
		{"project not loaded", baseUser(), nil, nil, metering.FixedChargeAnswer{Status: metering.ScriptNoProject}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.put(c.user, c.project)
			before, beforeP := w.user(), w.project()
			a := w.args(101, 2000) // a refill would be due
			ans, err := metering.RunFixedCharge(ctx, w.rdb, a)
			require.NoError(t, err)
			require.Equal(t, c.want, ans)
			require.Equal(t, before, w.user())
			require.Equal(t, beforeP, w.project())
			require.Empty(t, w.events())
		})
	}
}

// BenchmarkFixedChargeScript compares Redis's CPU per charge of the fixed
// and tracked charge scripts and of an empty script with the same
// arguments (the floor of one EVALSHA), the scripts alone (no Engine), on
// a user with a project charged from its allowance, as most charges are.
// (Until charge.lua went, it measured its charge mode beside them too:
// docs/benchmarks.md has those figures.) The three alternate in rounds so
// a machine whose load drifts skews none of them. Exact only against a Redis
// no other test uses:
//
//	TOLLGATE_TEST_REDIS_URL=redis://127.0.0.1:6391/0 go test ./metering/ -run '^$' -bench FixedChargeScript -count 3
func BenchmarkFixedChargeScript(b *testing.B) {
	rdb := meteringtest.Redis(b)
	ctx := context.Background()
	empty := redis.NewScript("return {0, 0, 0, 0, 0, 0}")
	type run func(*scriptWorld) (metering.FixedChargeAnswer, error)
	const cost, pstart = 1, 1000
	// Tracked: the in-flight member of the same id is written over each
	// time, so the set stays at one member, as when releases keep up.
	scripts := []struct {
		unit string
		run  run
		w    *scriptWorld
		usec int64
		n    int
	}{
		{unit: "fixed-µs/call", run: func(w *scriptWorld) (metering.FixedChargeAnswer, error) {
			return metering.RunFixedCharge(ctx, rdb, w.args(cost, pstart))
		}},
		{unit: "tracked-µs/call", run: func(w *scriptWorld) (metering.FixedChargeAnswer, error) {
			return metering.RunTrackedCharge(ctx, rdb, w.tracked(cost, pstart))
		}},
		{unit: "empty-µs/call", run: func(w *scriptWorld) (metering.FixedChargeAnswer, error) {
			a := w.args(cost, pstart)
			res, err := empty.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, a.EventsKey}, a.KeyHash, a.UserVersion,
				a.ProjectVersion, a.NowMs, a.AllowanceStart, a.Month, int64(a.Cost), a.EventID, a.Request, a.UserID).Int64Slice()
			if err != nil {
				return metering.FixedChargeAnswer{}, err
			}
			return metering.FixedChargeAnswer{Status: res[0]}, nil
		}},
	}
	for i := range scripts {
		w := newScriptWorld(b, rdb)
		w.put(baseUser("a", strconv.FormatInt(1<<50, 10)), baseProject("pe", "1", "pb", "1000"))
		scripts[i].w = w
		_, err := scripts[i].run(w) // loads the script
		require.NoError(b, err)
	}
	b.ResetTimer()
	const round = 500
	for done := 0; done < b.N; done += round {
		for i := range scripts {
			s := &scripts[i]
			before := meteringtest.ReadScriptStats(b, rdb)
			for j := 0; j < round && done+j < b.N; j++ {
				if ans, err := s.run(s.w); err != nil || ans.Status != metering.ScriptOK {
					b.Fatalf("%+v %v", ans, err)
				}
				s.n++
			}
			d := meteringtest.ReadScriptStats(b, rdb).Sub(before)
			s.usec += d.Usec
		}
	}
	b.StopTimer()
	for _, s := range scripts {
		b.ReportMetric(float64(s.usec)/float64(s.n), s.unit)
	}
}
