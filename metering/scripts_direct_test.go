package metering_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// Direct tests of reserve.lua, peek.lua, refresh.lua and adjust_user.lua
// against the real Redis, without an Engine: hashes written by hand, each
// script run through its typed boundary, everything it may write read
// back. script_model_random_test.go checks the same scripts on random
// states; these pin each layout and each answer by hand.

func TestReserveScriptLayout(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	// The period rolled (allowance back to 100), and the route allows
	// purchased then allowance only: 130 takes 40 purchased and 90 allowance.
	w.put(baseUser("a", "3", "pu", "25", "aw", "500", "pr", "40"), baseProject("pe", "1", "pb", "50"))
	require.NoError(t, w.rdb.Set(ctx, w.keys.PriceVersion(), "3", 0).Err())
	a := w.reserveArgs(130, 2000, "ra")
	a.PriceVersion = "3"
	raw, ans, err := metering.RunReserve(ctx, w.rdb, a)
	require.NoError(t, err)
	require.Equal(t, []int64{0, 10, 90, 0, 0, 40}, raw)
	require.Equal(t, metering.ReserveAnswer{Status: metering.ScriptOK, Remaining: 10,
		Taken: metering.Split{Allowance: 90, Purchased: 40}}, ans)
	s := w.snapshot()
	require.Equal(t, []string{"10", "2000", "0", "500", "0"}, []string{s.User["a"], s.User["ap"], s.User["pu"], s.User["aw"], s.User["pr"]})
	require.Equal(t, "50", s.Project["pb"])
	t0 := strconv.Itoa(scriptNowMs)
	require.Equal(t, []map[string]any{
		{"id": "evt1:r", "k": "refill", "t": t0, "u": "7", "un": "ann", "p": "3", "pn": "proj", "ap": "2000", "a": "97", "pu": "-25"},
		{"id": "evt1", "k": "hold", "t": t0, "u": "7", "un": "ann", "p": "3", "pn": "proj",
			"a": "-90", "pr": "-40", "rs": "130", "m": "m1", "rq": "GET /x"},
	}, s.Events)
	require.Equal(t, map[string]string{"u": "7", "p": "3", "un": "ann", "pn": "proj", "ap": "2000",
		"ae": strconv.Itoa(2000_000 + 86_400_000), "o": "ra", "rs": "130", "a": "90", "pl": "0", "w": "0", "r": "40",
		"m": "m1", "rq": "GET /x"}, s.Record)
	deadline := []redis.Z{{Score: scriptNowMs + 60_000, Member: "evt1"}}
	require.Equal(t, deadline, s.Leases)
	require.Equal(t, deadline, s.InFlight)
}

// refusalCase is a state and a change of the arguments a script must
// refuse with want, writing nothing.
type refusalCase struct {
	name    string
	user    map[string]string
	project map[string]string
	setup   func(*scriptWorld)
	want    []int64
}

// runRefusals puts each case's state, runs the script and requires its
// answer and that nothing changed.
func runRefusals(t *testing.T, w *scriptWorld, cases []refusalCase, run func() ([]int64, error)) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.put(c.user, c.project)
			if c.setup != nil {
				c.setup(w)
			}
			before := w.snapshot()
			got, err := run()
			require.NoError(t, err)
			require.Equal(t, c.want, got)
			require.Equal(t, before, w.snapshot())
		})
	}
}

func setPriceVersion(v string) func(*scriptWorld) {
	return func(w *scriptWorld) {
		require.NoError(w.t, w.rdb.Set(context.Background(), w.keys.PriceVersion(), v, 0).Err())
	}
}

// Refusals shared by every script that checks nothing of the key: the
// user deleted or not loaded, the project not loaded.
func loadRefusals() []refusalCase {
	noPartnerFlag := baseUser()
	delete(noPartnerFlag, "pt")
	return []refusalCase{
		{name: "deleted", user: baseUser("del", "1"), project: baseProject(), want: []int64{metering.ScriptDeleted}},
		{name: "balances not loaded", user: map[string]string{"kh": scriptKeyHash, "v": "5", "pt": "0"},
			project: baseProject(), want: []int64{metering.ScriptNoUser}},
		{name: "hash without partner flag", user: noPartnerFlag, project: baseProject(), want: []int64{metering.ScriptNoUser}},
		{name: "project not loaded", user: baseUser(), want: []int64{metering.ScriptNoProject}},
		{name: "project balance not loaded", user: baseUser(),
			project: func() map[string]string { p := baseProject(); delete(p, "pb"); return p }(),
			want:    []int64{metering.ScriptNoProject}},
	}
}

func TestReserveScriptRefusalsWriteNothing(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	cases := append(loadRefusals(),
		refusalCase{name: "insufficient in the allowed buckets", user: baseUser("aw", "500"), project: baseProject(),
			want: []int64{metering.ScriptInsufficient, 100}},
		refusalCase{name: "rotated key", user: baseUser("kh", strings.Repeat("x", 32)), project: baseProject(),
			want: []int64{metering.ScriptStale}},
		refusalCase{name: "user version", user: baseUser("v", "6"), project: baseProject(), want: []int64{metering.ScriptStale}},
		refusalCase{name: "project version", user: baseUser(), project: baseProject("v", "10"), want: []int64{metering.ScriptStale}},
		refusalCase{name: "inactive", user: baseUser("st", "0"), project: baseProject(), want: []int64{metering.ScriptRefused}},
		refusalCase{name: "expired", user: baseUser("exp", strconv.Itoa(scriptNowMs)), project: baseProject(),
			want: []int64{metering.ScriptRefused}},
		refusalCase{name: "price changed", user: baseUser(), project: baseProject(), setup: setPriceVersion("4"),
			want: []int64{metering.ScriptStalePrice}},
		refusalCase{name: "cancelled", user: baseUser(), project: baseProject(), setup: func(w *scriptWorld) {
			setPriceVersion("3")(w)
			require.NoError(t, w.rdb.HSet(ctx, w.keys.Reservation("evt1"), "x", "1").Err())
		}, want: []int64{metering.ScriptCancelled}},
	)
	for i := range cases {
		if cases[i].setup == nil { // the estimate's price version is current
			cases[i].setup = setPriceVersion("3")
		}
	}
	runRefusals(t, w, cases, func() ([]int64, error) {
		a := w.reserveArgs(101, 2000, "ap") // a refill would be due; awarded is not allowed
		a.PriceVersion = "3"
		raw, _, err := metering.RunReserve(ctx, w.rdb, a)
		return raw, err
	})
}

func TestReserveScriptRejectsBadOrderBeforeWriting(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	for _, order := range []string{"aa", "apx", "z"} {
		w.put(baseUser(), baseProject())
		before := w.snapshot()
		_, _, err := metering.RunReserve(ctx, w.rdb, w.reserveArgs(1, 2000, order))
		require.ErrorContains(t, err, "bad bucket order", order)
		require.Equal(t, before, w.snapshot(), order)
	}
}

func TestPeekScriptAppliesDueChangesInTheAnswerOnly(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	// A refill (allowance 3 → 100, pool use 25 → 0: 30 of the pool
	// available under the limit) and two months of grants (2 × 40) are due.
	w.put(baseUser("a", "3", "pu", "25", "aw", "5", "pr", "1", "pt", "1", "mg", "40", "gm", strconv.Itoa(scriptMonth-2)),
		baseProject("pe", "1", "pb", "50", "pl", "30"))
	before := w.snapshot()
	raw, ans, err := metering.RunPeek(ctx, w.rdb, w.peekArgs(2000))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 100 + 30 + 5 + 81, 100, 30, 5, 81, 50, 0, scriptMonth}, raw)
	require.Equal(t, metering.PeekAnswer{Status: metering.ScriptOK, Balances: metering.Balances{Effective: 216,
		Allowance: 100, PoolAvailable: 30, Awarded: 5, Purchased: 81}, PoolBalance: 50, PoolUsed: 0,
		GrantMonth: scriptMonth}, ans)
	require.Equal(t, before, w.snapshot())
}

func TestPeekScriptRefusals(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	runRefusals(t, w, loadRefusals(), func() ([]int64, error) {
		raw, _, err := metering.RunPeek(context.Background(), w.rdb, w.peekArgs(2000))
		return raw, err
	})
}

func TestRefreshScriptWritesDueRefillAndGrant(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	w.put(baseUser("a", "3", "pu", "25", "aw", "5", "pr", "1", "pt", "1", "mg", "40", "gm", strconv.Itoa(scriptMonth-2)),
		baseProject("pe", "1", "pb", "50", "pl", "30"))
	raw, ans, err := metering.RunRefresh(ctx, w.rdb, w.refreshArgs(2000))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 1, 97, -25, 2000, 80, scriptMonth}, raw)
	require.Equal(t, metering.RefreshAnswer{Status: metering.ScriptOK, Refilled: true, Allowance: 97, PoolUsed: -25,
		Period: 2000, Grant: 80, Month: scriptMonth}, ans)
	s := w.snapshot()
	require.Equal(t, []string{"100", "2000", "0", "5", "81", strconv.Itoa(scriptMonth)},
		[]string{s.User["a"], s.User["ap"], s.User["pu"], s.User["aw"], s.User["pr"], s.User["gm"]})
	require.Equal(t, "50", s.Project["pb"])
	t0 := strconv.Itoa(scriptNowMs)
	require.Equal(t, []map[string]any{
		{"id": "evt1:r", "k": "refill", "t": t0, "u": "7", "un": "ann", "p": "3", "pn": "proj", "ap": "2000", "a": "97", "pu": "-25"},
		{"id": "evt1:g", "k": "grant", "t": t0, "u": "7", "un": "ann", "p": "3", "pn": "proj", "pr": "80", "gm": strconv.Itoa(scriptMonth)},
	}, s.Events)
	require.Empty(t, s.Record)
	require.Empty(t, s.InFlight)

	// Nothing due any more: nothing written, nothing appended.
	before := w.snapshot()
	raw, _, err = metering.RunRefresh(ctx, w.rdb, w.refreshArgs(2000))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 0, 0, 0, 2000, 0, scriptMonth}, raw)
	require.Equal(t, before, w.snapshot())
}

func TestRefreshScriptRefusals(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	runRefusals(t, w, loadRefusals(), func() ([]int64, error) {
		raw, _, err := metering.RunRefresh(context.Background(), w.rdb, w.refreshArgs(2000))
		return raw, err
	})
}

func TestAdjustUserScriptLayout(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	// A due grant is paid first: purchased 1 + 40, then -30.
	w.put(baseUser("p", "0", "aw", "5", "pr", "1", "pt", "1", "mg", "40", "gm", strconv.Itoa(scriptMonth-1)), nil)
	raw, ans, err := metering.RunAdjustUser(ctx, w.rdb, w.adjustArgs(-30, 2000, "pr"))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 11}, raw)
	require.Equal(t, metering.AdjustAnswer{Status: metering.ScriptOK, Balance: 11}, ans)
	s := w.snapshot()
	require.Equal(t, []string{"5", "11", strconv.Itoa(scriptMonth)}, []string{s.User["aw"], s.User["pr"], s.User["gm"]})
	t0 := strconv.Itoa(scriptNowMs)
	require.Equal(t, []map[string]any{
		{"id": "evt1:g", "k": "grant", "t": t0, "u": "7", "un": "ann", "pr": "40", "gm": strconv.Itoa(scriptMonth)},
		{"id": "evt1", "k": "adjust", "t": t0, "u": "7", "un": "ann", "pr": "-30", "ac": "admin", "no": "why"},
	}, s.Events)

	raw, _, err = metering.RunAdjustUser(ctx, w.rdb, w.adjustArgs(7, 2000, "aw"))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 12}, raw)
	require.Equal(t, "12", w.user()["aw"])
}

func TestAdjustUserScriptRefusalsWriteNothing(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	delta, field := metering.Credits(-6), "aw"
	cases := append(loadRefusals(),
		refusalCase{name: "below zero", user: baseUser("aw", "5"), project: baseProject(), want: []int64{metering.ScriptInsufficient, 5}})
	runRefusals(t, w, cases, func() ([]int64, error) {
		raw, _, err := metering.RunAdjustUser(ctx, w.rdb, w.adjustArgs(delta, 2000, field)) // a refill would be due
		return raw, err
	})
	delta, field = 2, "pr"
	runRefusals(t, w, []refusalCase{{name: "above the maximum", user: baseUser("pr", strconv.Itoa(scriptMax-1)),
		project: baseProject(), want: []int64{metering.ScriptTooLarge, scriptMax - 1}}}, func() ([]int64, error) {
		raw, _, err := metering.RunAdjustUser(ctx, w.rdb, w.adjustArgs(delta, 2000, field))
		return raw, err
	})
	w.put(baseUser(), baseProject())
	before := w.snapshot()
	_, _, err := metering.RunAdjustUser(ctx, w.rdb, w.adjustArgs(1, 2000, "a"))
	require.ErrorContains(t, err, "bad bucket field")
	require.Equal(t, before, w.snapshot())
}

// TestScriptAnswerParsersRejectUnknownShapes: each parser takes only the
// answers its script gives.
func TestScriptAnswerParsersRejectUnknownShapes(t *testing.T) {
	for _, c := range []struct {
		name  string
		parse func([]int64) error
		good  [][]int64
		bad   [][]int64
	}{
		{"reserve", func(r []int64) error { _, err := metering.ParseReserveAnswer(r); return err },
			[][]int64{{0, 1, 2, 3, 4, 5}, {1, 9}, {-1}, {-2}, {-3}, {-4}, {-5}, {-6}, {-7}},
			[][]int64{nil, {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4, 5, 6}, {1}, {2, 5}, {-8}, {-1, 0}}},
		{"peek", func(r []int64) error { _, err := metering.ParsePeekAnswer(r); return err },
			[][]int64{{0, 1, 2, 3, 4, 5, 6, 7, 8}, {-1}, {-4}, {-7}},
			[][]int64{nil, {0, 1, 2}, {1, 5}, {-2}, {-3}, {-5}, {-6}, {-7, 1}}},
		{"refresh", func(r []int64) error { _, err := metering.ParseRefreshAnswer(r); return err },
			[][]int64{{0, 0, 0, 0, 1, 0, 2}, {0, 1, 5, -5, 1, 3, 2}, {-1}, {-4}, {-7}},
			[][]int64{nil, {0, 2, 0, 0, 1, 0, 2}, {0, 1, 0, 0, 1, -3, 2}, {0, 1}, {1, 1}, {-2}, {-6}}},
		{"adjust_user", func(r []int64) error { _, err := metering.ParseAdjustUserAnswer(r); return err },
			[][]int64{{0, 5}, {1, 5}, {2, 5}, {-1}, {-4}, {-7}},
			[][]int64{nil, {0}, {1, 5, 6}, {-2}, {-3}, {-5}, {-6}, {-4, 1}}},
	} {
		for _, r := range c.good {
			require.NoError(t, c.parse(r), "%s %v", c.name, r)
		}
		for _, r := range c.bad {
			require.Error(t, c.parse(r), "%s %v", c.name, r)
		}
	}
}

// lease_flush.lua appends one packed entry per call, whatever the number
// of uses: the shared fields once, the count, and the uses packed by Go,
// which read back byte for byte (labels that look like the encoding, NUL,
// invalid UTF-8); it raises the lease record's use, never lowers it, and
// says when the lease has ended (the entry is appended all the same).
func TestLeaseFlushScriptLayout(t *testing.T) {
	w := newScriptWorld(t, meteringtest.Redis(t))
	ctx := context.Background()
	record := w.keys.CreditLease("l1")
	require.NoError(t, w.rdb.HSet(ctx, record, "used", "50").Err())
	uses := []metering.LeaseUse{
		{EventID: "g-1", AtMs: scriptNowMs, Cost: 10, Request: "3:abc"},
		{EventID: "g-2", AtMs: scriptNowMs + 1, Cost: 0, Request: "a\x00b\xff"},
		{EventID: "g-3", AtMs: scriptNowMs + 2, Cost: 20, Request: ""},
	}
	a := metering.LeaseFlushArgs{EventsKey: w.keys.Events(), RecordKey: record, Used: 80, UserID: "7",
		Username: "ann", ProjectID: "3", ProjectName: "p:1", Uses: uses}
	ended, err := metering.RunLeaseFlush(ctx, w.rdb, a)
	require.NoError(t, err)
	require.False(t, ended)
	require.Equal(t, "80", w.rdb.HGet(ctx, record, "used").Val())
	require.Equal(t, []map[string]any{{"k": "usage", "u": "7", "un": "ann", "p": "3", "pn": "p:1", "n": "3",
		"ev": "3:g-113:" + strconv.Itoa(scriptNowMs) + "2:105:3:abc" +
			"3:g-213:" + strconv.Itoa(scriptNowMs+1) + "1:04:a\x00b\xff" +
			"3:g-313:" + strconv.Itoa(scriptNowMs+2) + "2:200:"}}, w.events())
	evs, err := metering.EntryEventsForTest(w.events()[0])
	require.NoError(t, err)
	require.Len(t, evs, 3)
	for i, u := range uses {
		require.Equal(t, []any{u.EventID, u.AtMs, u.Cost, u.Request, "usage", int64(7), "ann", int64(3), "p:1"},
			[]any{evs[i].ID, evs[i].At.UnixMilli(), evs[i].Cost, evs[i].Request, evs[i].Kind, evs[i].UserID,
				evs[i].Username, evs[i].ProjectID, evs[i].ProjectName})
	}

	// A flush that raced a later one does not lower the use.
	a.Used, a.Uses = 60, uses[:1]
	ended, err = metering.RunLeaseFlush(ctx, w.rdb, a)
	require.NoError(t, err)
	require.False(t, ended)
	require.Equal(t, "80", w.rdb.HGet(ctx, record, "used").Val())

	// Ended: no record is written, the events are appended; no project,
	// no project fields.
	require.NoError(t, w.rdb.Del(ctx, record, w.keys.Events()).Err())
	a.ProjectID, a.ProjectName, a.Used = "0", "", 90
	ended, err = metering.RunLeaseFlush(ctx, w.rdb, a)
	require.NoError(t, err)
	require.True(t, ended)
	require.Zero(t, w.rdb.Exists(ctx, record).Val())
	require.Equal(t, []map[string]any{{"k": "usage", "u": "7", "un": "ann", "n": "1",
		"ev": metering.PackUsesForTest(uses[0])}}, w.events())
}
