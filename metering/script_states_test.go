package metering_test

import (
	"context"
	"math/rand/v2"
	"strconv"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Random user and project states for the direct script tests: balances
// near 0 and near the 2^53 cap, refills and grants due or not, pools with
// and without limits, and now and then every refusal (deleted, not loaded,
// stale, inactive, expired, project missing).

const scriptMax = 9007199254740991

type stateGen struct{ rng *rand.Rand }

func (g stateGen) amount() int64 {
	switch g.rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return scriptMax - g.rng.Int64N(50)
	default:
		return g.rng.Int64N(200)
	}
}

func (g stateGen) pick(s ...string) string { return s[g.rng.IntN(len(s))] }

func num(v int64) string { return strconv.FormatInt(v, 10) }

// state is a random user hash and project hash (nil: not loaded).
func (g stateGen) state() (map[string]string, map[string]string) {
	rng := g.rng
	u := baseUser("a", num(g.amount()), "ap", g.pick("1000", "1000", "2000"), "pu", num(rng.Int64N(60)),
		"aw", num(g.amount()), "pr", num(g.amount()), "mg", g.pick("0", "0", "40", num(scriptMax/2)),
		"gm", g.pick("0", num(scriptMonth-3), num(scriptMonth)), "pt", g.pick("0", "1", "1"),
		"st", g.pick("1", "1", "1", "1", "1", "1", "1", "0"),
		"exp", g.pick("0", "0", "0", "0", "0", "0", "0", "0", num(scriptNowMs), num(scriptNowMs+1)),
		"p", g.pick("0", num(scriptProjectID), num(scriptProjectID)))
	if rng.IntN(30) == 0 {
		u["del"] = "1"
	}
	if rng.IntN(30) == 0 {
		delete(u, "pt")
	}
	if rng.IntN(40) == 0 {
		delete(u, "a") // configuration loaded, balances not yet
	}
	if rng.IntN(30) == 0 {
		u["v"] = "4"
	}
	var p map[string]string
	if rng.IntN(20) != 0 {
		p = baseProject("amt", num(rng.Int64N(150)), "per", g.pick("daily", "daily", "daily", "none"),
			"pe", g.pick("0", "1"), "pb", num(rng.Int64N(100)), "pl", g.pick("-1", "-1", num(rng.Int64N(70))),
			"v", g.pick("9", "9", "9", "8"))
	}
	return u, p
}

// period is a random allowance period start: the user's (1000) or a
// later one (a refill due where the project has a period).
func (g stateGen) period() int64 {
	if g.rng.IntN(3) != 0 {
		return 2000
	}
	return 1000
}

// order is a random bucket order as BucketOrder.letters gives it: one to
// four distinct letters.
func (g stateGen) order() string {
	letters := []byte("apwr")
	g.rng.Shuffle(len(letters), func(i, j int) { letters[i], letters[j] = letters[j], letters[i] })
	return string(letters[:1+g.rng.IntN(4)])
}

// leases is the deployment's lease set, member → deadline.
func (w *scriptWorld) leases() []redis.Z {
	v, err := w.rdb.ZRangeWithScores(context.Background(), w.keys.Leases(), 0, -1).Result()
	require.NoError(w.t, err)
	return v
}

// record is the hash of reservation evt1.
func (w *scriptWorld) record() map[string]string {
	v, err := w.rdb.HGetAll(context.Background(), w.keys.Reservation("evt1")).Result()
	require.NoError(w.t, err)
	return v
}

// snapshot is everything a script may write.
type snapshot struct {
	User, Project, Record map[string]string
	Events                []map[string]any
	InFlight, Leases      []redis.Z
}

func (w *scriptWorld) snapshot() snapshot {
	return snapshot{User: w.user(), Project: w.project(), Record: w.record(), Events: w.events(),
		InFlight: w.inFlight(), Leases: w.leases()}
}

// reserveArgs is a reservation of amount in order, as of period pstart.
func (w *scriptWorld) reserveArgs(amount metering.Credits, pstart int64, order string) metering.ReserveArgs {
	f := w.args(amount, pstart)
	return metering.ReserveArgs{UserKey: f.UserKey, ProjectKey: f.ProjectKey, EventsKey: f.EventsKey,
		FlightKey: w.keys.InFlight(scriptUserID), RecordKey: w.keys.Reservation("evt1"), LeasesKey: w.keys.Leases(),
		PriceVersionKey: w.keys.PriceVersion(), KeyHash: f.KeyHash, UserVersion: f.UserVersion,
		ProjectVersion: f.ProjectVersion, NowMs: f.NowMs, AllowanceStart: f.AllowanceStart, Month: f.Month,
		Amount: amount, EventID: f.EventID, Request: f.Request, UserID: f.UserID, DeadlineMs: scriptNowMs + 60_000,
		Order: order, PriceVersion: "", Model: "m1", AllowanceEndMs: 2000_000 + 86_400_000}
}

func (w *scriptWorld) peekArgs(pstart int64) metering.PeekArgs {
	return metering.PeekArgs{UserKey: w.keys.User(scriptUserID), ProjectKey: w.keys.Project(scriptProjectID),
		AllowanceStart: pstart, Month: scriptMonth}
}

func (w *scriptWorld) refreshArgs(pstart int64) metering.RefreshArgs {
	return metering.RefreshArgs{UserKey: w.keys.User(scriptUserID), ProjectKey: w.keys.Project(scriptProjectID),
		EventsKey: w.keys.Events(), NowMs: scriptNowMs, AllowanceStart: pstart, Month: scriptMonth,
		EventID: "evt1", UserID: scriptUserID}
}

func (w *scriptWorld) adjustArgs(delta metering.Credits, pstart int64, field string) metering.AdjustUserArgs {
	return metering.AdjustUserArgs{UserKey: w.keys.User(scriptUserID), ProjectKey: w.keys.Project(scriptProjectID),
		EventsKey: w.keys.Events(), NowMs: scriptNowMs, AllowanceStart: pstart, Month: scriptMonth,
		Delta: delta, EventID: "evt1", UserID: scriptUserID, Field: field, Kind: metering.KindAdjust,
		Actor: "admin", Note: "why"}
}
