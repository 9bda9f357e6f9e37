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

// TestScriptsMatchChargeModes runs reserve.lua, peek.lua, refresh.lua and
// adjust_user.lua and charge.lua's mode each replaces on the same random
// states, and requires the same answer and the same writes.
func TestScriptsMatchChargeModes(t *testing.T) {
	rdb := meteringtest.Redis(t)
	lean, old := newScriptWorld(t, rdb), newScriptWorld(t, rdb)
	ctx := context.Background()
	g := stateGen{rand.New(rand.NewPCG(11, 3))}
	seen := map[string]map[int64]int{}
	for i := 0; i < 2000; i++ {
		u, p := g.state()
		pstart := g.period()
		lean.put(u, p)
		old.put(u, p)
		op := g.pick("reserve", "peek", "refresh", "adjust")
		var got, want []int64
		var err, oldErr error
		what := fmt.Sprintf("case %d %s: user %v project %v period %d", i, op, u, p, pstart)
		switch op {
		case "reserve":
			amount := metering.Credits(g.rng.Int64N(400))
			if g.rng.IntN(5) == 0 {
				amount = metering.Credits(g.amount())
			}
			a, b := lean.reserveArgs(amount, pstart, g.order()), old.reserveArgs(amount, pstart, "")
			a.PriceVersion = g.pick("", "", "", "0", "3", "4")
			if g.rng.IntN(2) == 0 {
				require.NoError(t, rdb.Set(ctx, lean.keys.PriceVersion(), "3", 0).Err())
				require.NoError(t, rdb.Set(ctx, old.keys.PriceVersion(), "3", 0).Err())
			}
			if g.rng.IntN(20) == 0 { // a cancel's marker
				require.NoError(t, rdb.HSet(ctx, lean.keys.Reservation("evt1"), "x", "1").Err())
				require.NoError(t, rdb.HSet(ctx, old.keys.Reservation("evt1"), "x", "1").Err())
			}
			b.Order, b.PriceVersion = a.Order, a.PriceVersion
			what += fmt.Sprintf(" amount %d order %s version %q", amount, a.Order, a.PriceVersion)
			got, _, err = metering.RunReserve(ctx, rdb, a)
			want, oldErr = metering.RunChargeModeReserve(ctx, rdb, b)
		case "peek":
			got, _, err = metering.RunPeek(ctx, rdb, lean.peekArgs(pstart))
			want, oldErr = metering.RunChargeModePeek(ctx, rdb, old.peekArgs(pstart), old.keys.Events())
		case "refresh":
			got, _, err = metering.RunRefresh(ctx, rdb, lean.refreshArgs(pstart))
			want, oldErr = metering.RunChargeModeRefresh(ctx, rdb, old.refreshArgs(pstart))
		case "adjust":
			delta := metering.Credits(g.amount())
			if g.rng.IntN(2) == 0 {
				delta = -delta
			}
			field := g.pick("aw", "pr")
			what += fmt.Sprintf(" delta %d field %s", delta, field)
			got, _, err = metering.RunAdjustUser(ctx, rdb, lean.adjustArgs(delta, pstart, field))
			want, oldErr = metering.RunChargeModeAdjust(ctx, rdb, old.adjustArgs(delta, pstart, field))
		}
		require.NoError(t, err, what)
		require.NoError(t, oldErr, what)
		require.Equal(t, want, got, what)
		require.Equal(t, old.snapshot(), lean.snapshot(), what)
		if seen[op] == nil {
			seen[op] = map[int64]int{}
		}
		seen[op][got[0]]++
	}
	t.Logf("answers by script and status: %v", seen)
	for _, op := range []string{"reserve", "peek", "refresh", "adjust"} {
		require.Greater(t, seen[op][metering.ScriptOK], 100, op)
	}
	require.Greater(t, seen["reserve"][metering.ScriptInsufficient], 30)
	require.Greater(t, seen["reserve"][metering.ScriptStalePrice], 10)
	require.Greater(t, seen["adjust"][metering.ScriptInsufficient], 10)
	require.Greater(t, seen["adjust"][metering.ScriptTooLarge], 10)
}
