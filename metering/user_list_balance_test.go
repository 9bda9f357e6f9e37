package metering_test

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// TestZeroBalanceCandidatesRandom drives seeded random worlds (allowance
// rules in zones with and without daylight saving, pools with and without
// per-user limits, monthly grants, charges that often spend exactly what
// is left, clock jumps over local boundaries) against the model of
// random_test.go, and checks the balance=zero listing at every step: it
// never lists a user whose live effective credits are not 0, and once the
// ledger has every event, the ledger's candidates are exactly the users at
// 0, so the listing asks Redis about no one else.
// Re-run a failure with TOLLGATE_RANDOM_SEED=<seed>.
func TestZeroBalanceCandidatesRandom(t *testing.T) {
	t.Parallel()
	meteringtest.RandomSeeds(t, 3, func(t *testing.T, seed int64) { runZeroBalance(t, seed, 150) })
}

func runZeroBalance(t *testing.T, seed int64, steps int) {
	rng := rand.New(rand.NewSource(seed))
	start := utc(2026, 1, 1, 0, 0, 0).Add(time.Duration(rng.Int63n(int64(365 * 24 * time.Hour))))
	w := newWorld(t, start)
	zones := []string{"UTC", "Europe/Berlin", "America/Santiago", "Pacific/Auckland", "Asia/Kolkata"}
	periods := []metering.Period{metering.PeriodNone, metering.PeriodDaily, metering.PeriodWeekly, metering.PeriodMonthly}
	small := func() metering.Credits { // 0 half the time
		if rng.Intn(2) == 0 {
			return 0
		}
		return cr(1 + rng.Int63n(3))
	}
	var projects []*mProject
	for i := 0; i < 4; i++ {
		p := &mProject{name: fmt.Sprintf("p%d", i), amt: small(), per: periods[rng.Intn(len(periods))],
			loc: mustLoc(t, zones[rng.Intn(len(zones))]), poolOn: rng.Intn(3) > 0, limit: -1, pb: small() * 3}
		if rng.Intn(2) == 0 {
			p.limit = small()
		}
		spec := metering.ProjectSpec{Name: p.name, AllowanceAmount: p.amt, Period: p.per, TimeZone: p.loc.String(),
			PoolEnabled: p.poolOn, PoolBalance: p.pb}
		if p.limit >= 0 {
			spec.PoolPerUserLimit = ptr(p.limit)
		}
		p.id = w.project(t, spec).ID
		projects = append(projects, p)
	}
	var users []*mUser
	for i := 0; i < 12; i++ {
		u := &mUser{name: fmt.Sprintf("u%02d", i), ap: -1, aw: small(), pr: small()}
		if k := rng.Intn(len(projects) + 1); k < len(projects) {
			u.proj = projects[k]
		}
		if rng.Intn(3) == 0 {
			u.mg = cr(1 + rng.Int63n(2))
		}
		spec := metering.UserSpec{Username: u.name, InitialCredits: u.aw, Purchased: u.pr, MonthlyGrant: u.mg}
		if u.proj != nil {
			spec.Project = u.proj.name
		}
		u.key = w.user(t, spec)
		u.gm = metering.MonthIndex(u.loc(), start) - 1
		users = append(users, u)
	}

	check := func(step int, what string, drained bool) {
		t.Helper()
		ctx := fmt.Sprintf("seed %d step %d (%s) at %s", seed, step, what, w.Clock.Now().Format(time.RFC3339))
		var zero []string
		for _, u := range users {
			if u.live(w.Clock.Now()).effective == 0 {
				zero = append(zero, u.name)
			}
		}
		sort.Strings(zero)
		views, next, err := w.Engine.FindUsers(w.ctx, metering.UserQuery{Balance: metering.BalanceZero, Limit: 1000})
		require.NoError(t, err)
		require.Empty(t, next)
		var listed []string
		for _, v := range views {
			require.Equal(t, metering.Credits(0), v.Live.Effective, "%s: %s listed", ctx, v.Username)
			listed = append(listed, v.Username)
		}
		require.Subset(t, zero, listed, "%s: listed users are at 0", ctx)
		if drained {
			require.Equal(t, zero, listed, "%s: every user at 0 is listed", ctx)
			cands, err := w.Engine.ZeroBalanceCandidatesForTest(w.ctx)
			require.NoError(t, err)
			require.Equal(t, zero, nilIfNone(cands), "%s: the ledger proposes exactly the users at 0", ctx)
		}
	}

	check(0, "start", true)
	for step := 1; step <= steps; step++ {
		var what string
		drained := false
		switch op := rng.Intn(10); {
		case op < 5: // a charge, often of everything left
			u := users[rng.Intn(len(users))]
			cost := u.live(w.Clock.Now()).effective
			if rng.Intn(3) == 0 {
				cost = metering.Credits(rng.Int63n(int64(cr(4))))
			}
			what = fmt.Sprintf("charge %s %s", u.name, cost)
			got := w.charge(t, u.key, cost)
			require.Equal(t, u.charge(w.Clock.Now(), cost).Status, got.Status, what)
		case op < 8: // the clock moves, often to a local boundary
			p := projects[rng.Intn(len(projects))]
			switch per := p.per; {
			case rng.Intn(2) == 0 && per != metering.PeriodNone:
				w.Clock.Set(meteringtest.NextPeriodStart(per, p.loc, w.Clock.Now()).Add(time.Duration(rng.Intn(3)) * time.Second))
			case rng.Intn(2) == 0:
				w.Clock.Set(meteringtest.NextPeriodStart(metering.PeriodMonthly, p.loc, w.Clock.Now())) // grants
			default:
				w.Clock.Advance(time.Duration(1+rng.Intn(30)) * time.Hour)
			}
			what = "clock " + w.Clock.Now().Format(time.RFC3339)
		default:
			w.Drain(t)
			what, drained = "drain", true
		}
		check(step, what, drained)
	}
}

func nilIfNone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
