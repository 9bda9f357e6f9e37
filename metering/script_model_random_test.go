package metering_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// TestScriptsMatchModel runs every money script (the fixed and tracked
// charge, reserve, peek, refresh, adjust_user) on random states against
// the real Redis and requires the answer and every write (user, project,
// reservation record, events, in-flight and lease sets) to be the Go
// model's (script_model_test.go). It is what proves fixed_charge.lua and
// reserve.lua take the right amounts from the right buckets.
func TestScriptsMatchModel(t *testing.T) {
	rdb := meteringtest.Redis(t)
	w := newScriptWorld(t, rdb)
	ctx := context.Background()
	g := stateGen{rand.New(rand.NewPCG(10, 7))}
	seen := map[string]map[int64]int{}
	var refills, grants, pooled int
	for i := 0; i < 4000; i++ {
		u, p := g.state()
		op := modelOp{script: g.pick("fixed", "tracked", "reserve", "reserve", "peek", "refresh", "adjust"),
			pstart: g.period(), order: "apwr"}
		w.put(u, p)
		switch op.script {
		case "fixed", "tracked", "reserve":
			op.amount = g.rng.Int64N(400)
			if g.rng.IntN(5) == 0 {
				op.amount = g.amount()
			}
			op.marker = op.script != "fixed" && g.rng.IntN(15) == 0
			if op.marker || (op.script == "fixed" && g.rng.IntN(15) == 0) {
				// cancel_charge.lua's marker: only tracked operations see it.
				require.NoError(t, rdb.HSet(ctx, w.keys.Reservation("evt1"), "x", "1").Err())
				op.marker = true
			}
		case "adjust":
			op.amount, op.field = g.amount(), g.pick("aw", "pr")
			if g.rng.IntN(2) == 0 {
				op.amount = -op.amount
			}
		}
		if op.script == "reserve" {
			op.order, op.version, op.stored = g.order(), g.pick("", "", "", "0", "3", "4"), g.pick("", "3")
			if op.stored != "" {
				require.NoError(t, rdb.Set(ctx, w.keys.PriceVersion(), op.stored, 0).Err())
			}
		}
		what := fmt.Sprintf("case %d: %+v user %v project %v", i, op, u, p)
		var got []int64
		var err error
		switch op.script {
		case "fixed":
			var a metering.FixedChargeAnswer
			a, err = metering.RunFixedCharge(ctx, rdb, w.args(metering.Credits(op.amount), op.pstart))
			got = fixedAnswer(a, false)
		case "tracked":
			var a metering.FixedChargeAnswer
			a, err = metering.RunTrackedCharge(ctx, rdb, w.tracked(metering.Credits(op.amount), op.pstart))
			got = fixedAnswer(a, true)
		case "reserve":
			a := w.reserveArgs(metering.Credits(op.amount), op.pstart, op.order)
			a.PriceVersion = op.version
			got, _, err = metering.RunReserve(ctx, rdb, a)
		case "peek":
			got, _, err = metering.RunPeek(ctx, rdb, w.peekArgs(op.pstart))
		case "refresh":
			got, _, err = metering.RunRefresh(ctx, rdb, w.refreshArgs(op.pstart))
		case "adjust":
			got, _, err = metering.RunAdjustUser(ctx, rdb, w.adjustArgs(metering.Credits(op.amount), op.pstart, op.field))
		}
		require.NoError(t, err, what)
		want := runModel(u, p, op)
		require.Equal(t, want.answer, got, what)
		require.Equal(t, want.snap, w.snapshot(), what)

		if seen[op.script] == nil {
			seen[op.script] = map[int64]int{}
		}
		seen[op.script][got[0]]++
		for _, e := range want.snap.Events {
			switch e["k"] {
			case "refill":
				refills++
			case "grant":
				grants++
			case "usage", "hold":
				if _, ok := e["pl"]; ok {
					pooled++
				}
			}
		}
	}
	// The states must reach every path, not only the refusals.
	t.Logf("answers by script and status %v; %d refills, %d grants, %d pool draws", seen, refills, grants, pooled)
	for _, s := range []string{"fixed", "tracked", "reserve", "peek", "refresh", "adjust"} {
		require.Greater(t, seen[s][metering.ScriptOK], 100, s)
	}
	for _, s := range []string{"fixed", "tracked", "reserve"} {
		require.Greater(t, seen[s][metering.ScriptInsufficient], 30, s)
	}
	require.Greater(t, seen["tracked"][metering.ScriptCancelled]+seen["reserve"][metering.ScriptCancelled], 10)
	require.Greater(t, seen["reserve"][metering.ScriptStalePrice], 10)
	require.Greater(t, seen["adjust"][metering.ScriptInsufficient], 10)
	require.Greater(t, seen["adjust"][metering.ScriptTooLarge], 10)
	require.Greater(t, refills, 200)
	require.Greater(t, grants, 200)
	require.Greater(t, pooled, 100)
}

// fixedAnswer is the fixed charge scripts' answer as they gave it, from its
// parsed form.
func fixedAnswer(a metering.FixedChargeAnswer, tracked bool) []int64 {
	switch a.Status {
	case metering.ScriptOK:
		r := []int64{0, int64(a.Remaining), int64(a.Taken.Allowance), int64(a.Taken.Pool),
			int64(a.Taken.Awarded), int64(a.Taken.Purchased)}
		if tracked {
			r = append(r, a.Period)
		}
		return r
	case metering.ScriptInsufficient:
		return []int64{1, int64(a.Remaining)}
	}
	return []int64{a.Status}
}
