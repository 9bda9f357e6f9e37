package admin_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// TestRandomMovesNeverCreateCredits runs seeded random sequences of moves
// (PATCH /users), charges and clock jumps over the projects' period
// boundaries against a model of what the rules say, written differently
// from the scripts: every (user, project, period) has one allowance of the
// project's amount and one pool draw limit, which the user spends while it
// is in that project during that period, however it came and went. After
// every step the API must show the model's balances and every charge must
// take what the model takes; at the end the ledger's usage must spend, per
// user, project and period, exactly what the model spent, never more than
// one allowance and one pool limit, and Redis must equal Postgres.
// Re-run a failure with TOLLGATE_RANDOM_SEED=<seed>.
func TestRandomMovesNeverCreateCredits(t *testing.T) {
	t.Parallel()
	meteringtest.RandomSeeds(t, 2, func(t *testing.T, seed int64) { runRandomMoves(t, seed, 300) })
}

type moveProject struct {
	name   string
	amt    metering.Credits
	per    metering.Period
	loc    *time.Location
	poolOn bool
	limit  metering.Credits // -1: none
	pb     metering.Credits
}

type moveUser struct {
	name, key string
	proj      *moveProject // nil: unassigned
	aw        metering.Credits
}

// budgetKey is one allowance and pool draw: a user, a project, a period
// (its start; 0 for a project without periods, whose one period lasts).
type budgetKey struct {
	user, project string
	period        int64
}

type budget struct{ spent, drawn metering.Credits }

type moveModel struct {
	budgets map[budgetKey]*budget
}

func (m *moveModel) budget(u *moveUser, now time.Time) *budget {
	p := u.proj
	k := budgetKey{user: u.name, project: p.name}
	if p.per != metering.PeriodNone {
		k.period = metering.PeriodStart(p.per, p.loc, now)
	}
	b := m.budgets[k]
	if b == nil {
		b = &budget{}
		m.budgets[k] = b
	}
	return b
}

// live is what the user can spend now: allowance, pool, awarded.
func (m *moveModel) live(u *moveUser, now time.Time) (a, pool metering.Credits) {
	p := u.proj
	if p == nil {
		return 0, 0
	}
	b := m.budget(u, now)
	if p.per != metering.PeriodNone {
		a = p.amt - b.spent
	}
	if p.poolOn {
		pool = p.pb
		if p.limit >= 0 {
			pool = min(pool, p.limit-b.drawn)
		}
		pool = max(pool, 0)
	}
	return a, pool
}

// charge is the waterfall (allowance, pool, awarded), all or nothing.
func (m *moveModel) charge(u *moveUser, now time.Time, cost metering.Credits) (metering.ChargeStatus, metering.Split) {
	a, pool := m.live(u, now)
	if cost > a+pool+u.aw {
		return metering.Insufficient, metering.Split{}
	}
	s := metering.Split{Allowance: min(cost, a)}
	s.Pool = min(cost-s.Allowance, pool)
	s.Awarded = cost - s.Allowance - s.Pool
	if u.proj != nil {
		b := m.budget(u, now)
		b.spent += s.Allowance
		b.drawn += s.Pool
		u.proj.pb -= s.Pool
	}
	u.aw -= s.Awarded
	return metering.Charged, s
}

func runRandomMoves(t *testing.T, seed int64, steps int) {
	rng := rand.New(rand.NewSource(seed))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int63n(int64(365 * 24 * time.Hour)))).Truncate(time.Second)
	e := setupAt(t, start)
	loc := func(name string) *time.Location {
		l, err := time.LoadLocation(name)
		require.NoError(t, err)
		return l
	}
	projects := []*moveProject{
		{name: "a", amt: 10 * metering.Micro, per: metering.PeriodDaily, loc: loc("Europe/Berlin"), poolOn: true, limit: 4 * metering.Micro, pb: 300 * metering.Micro},
		{name: "b", amt: 25 * metering.Micro, per: metering.PeriodWeekly, loc: loc("Pacific/Auckland"), poolOn: true, limit: -1, pb: 60 * metering.Micro},
		{name: "c", amt: 5 * metering.Micro, per: metering.PeriodNone, loc: time.UTC, poolOn: true, limit: 6 * metering.Micro, pb: 100 * metering.Micro},
		{name: "d", amt: 40 * metering.Micro, per: metering.PeriodMonthly, loc: loc("America/Los_Angeles")},
	}
	for _, p := range projects {
		limit := "null"
		if p.limit >= 0 {
			limit = p.limit.String()
		}
		e.admin(t, "POST", "/projects", fmt.Sprintf(`{"name":%q,"allowance":{"amount":%s,"period":%q,"timezone":%q},
			"pool":{"enabled":%t,"balance":%s,"per_user_limit":%s}}`,
			p.name, p.amt, p.per, p.loc, p.poolOn, p.pb, limit)).requireStatus(t, http.StatusCreated)
	}
	m := &moveModel{budgets: map[budgetKey]*budget{}}
	var users []*moveUser
	for i := 0; i < 3; i++ {
		u := &moveUser{name: fmt.Sprintf("u%d", i), proj: projects[rng.Intn(len(projects))], aw: 30 * metering.Micro}
		u.key = e.createUserKey(t, fmt.Sprintf(`{"username":%q,"project":%q,"initial_credits":30}`, u.name, u.proj.name))
		users = append(users, u)
	}

	check := func(step int, what string) {
		t.Helper()
		now := e.Clock.Now()
		ctx := fmt.Sprintf("seed %d step %d (%s) at %s", seed, step, what, now.Format(time.RFC3339))
		list := e.admin(t, "GET", "/users?limit=100", "").requireStatus(t, http.StatusOK).body["users"].([]any)
		require.Len(t, list, len(users))
		for i, raw := range list {
			u, got := users[i], raw.(map[string]any)
			require.Equal(t, u.name, got["username"])
			a, pool := m.live(u, now)
			want := []metering.Credits{a, pool, u.aw, a + pool + u.aw}
			have := make([]metering.Credits, 4)
			for j, f := range []string{"allowance_remaining", "pool_available", "awarded", "effective_credits"} {
				c, err := metering.ParseCredits(string(got[f].(json.Number)))
				require.NoError(t, err)
				have[j] = c
			}
			require.Equal(t, want, have, "%s: %s [allowance pool awarded effective]", ctx, u.name)
		}
	}

	check(0, "start")
	var moves, returns, charges, refused int
	for step := 1; step <= steps; step++ {
		var what string
		switch op := rng.Intn(100); {
		case op < 35: // a move, often straight back
			u := users[rng.Intn(len(users))]
			to := u.proj
			for to == u.proj {
				to = nil // unassigned, one time in five
				if i := rng.Intn(len(projects) + 1); i < len(projects) {
					to = projects[i]
				}
			}
			body, name := `{"project":null}`, "none"
			if to != nil {
				body, name = fmt.Sprintf(`{"project":%q}`, to.name), to.name
			}
			what = fmt.Sprintf("move %s to %s", u.name, name)
			e.admin(t, "PATCH", "/users/"+u.name, body).requireStatus(t, http.StatusOK)
			u.proj = to
			moves++
			if to != nil {
				if b := m.budget(u, e.Clock.Now()); b.spent > 0 || b.drawn > 0 {
					returns++ // back to something already spent in this period
				}
			}
		case op < 75:
			u := users[rng.Intn(len(users))]
			cost := metering.Credits(rng.Int63n(int64(14 * metering.Micro)))
			what = fmt.Sprintf("charge %s %s", u.name, cost)
			res, err := e.Engine.Charge(e.ctx, u.key, cost, "GET /x")
			require.NoError(t, err, what)
			status, split := m.charge(u, e.Clock.Now(), cost)
			require.Equal(t, status, res.Status, "seed %d step %d: %s", seed, step, what)
			charges++
			if status != metering.Charged {
				refused++
			}
			if status == metering.Charged {
				require.Equal(t, split, res.Taken, "seed %d step %d: %s", seed, step, what)
			}
		case op < 80: // more awarded credits, so that charges go on
			u := users[rng.Intn(len(users))]
			what = "credits for " + u.name
			e.admin(t, "POST", "/users/"+u.name+"/credits", `{"delta":20}`).requireStatus(t, http.StatusOK)
			u.aw += 20 * metering.Micro
		case op < 95: // the clock moves, often to a period boundary
			now := e.Clock.Now()
			switch rng.Intn(4) {
			case 0, 1:
				e.Clock.Advance(time.Duration(1+rng.Intn(600)) * time.Minute)
			case 2:
				e.Clock.Advance(time.Duration(1+rng.Intn(10)) * 24 * time.Hour)
			default:
				p := projects[rng.Intn(len(projects))]
				b := meteringtest.NextPeriodStart(p.per, p.loc, now)
				e.Clock.Set(b.Add(time.Duration(rng.Intn(5)-2) * time.Second))
				if !e.Clock.Now().After(now) {
					e.Clock.Set(now.Add(time.Second))
				}
			}
			what = fmt.Sprintf("clock %s -> %s", now.Format(time.RFC3339), e.Clock.Now().Format(time.RFC3339))
		default:
			what = "reconcile"
			e.Drain(t)
			e.AssertConsistent(t)
		}
		check(step, what)
	}

	e.Drain(t)
	e.AssertConsistent(t)
	// The ledger, read independently: what the usage events took from the
	// allowance and the pool, per user, project and period.
	byName := map[string]*moveProject{}
	for _, p := range projects {
		byName[p.name] = p
	}
	rows, err := e.DB.Query(e.ctx, `SELECT username, project_name, occurred_at, -d_allowance, d_pool_used
		FROM events WHERE kind = 'usage' AND project_name IS NOT NULL`)
	require.NoError(t, err)
	ledger := map[budgetKey]*budget{}
	for rows.Next() {
		var user, project string
		var at time.Time
		var a, pu int64
		require.NoError(t, rows.Scan(&user, &project, &at, &a, &pu))
		p := byName[project]
		k := budgetKey{user: user, project: project}
		if p.per != metering.PeriodNone {
			k.period = metering.PeriodStart(p.per, p.loc, at)
		}
		if ledger[k] == nil {
			ledger[k] = &budget{}
		}
		ledger[k].spent += metering.Credits(a)
		ledger[k].drawn += metering.Credits(pu)
	}
	require.NoError(t, rows.Err())
	for k, b := range ledger {
		p := byName[k.project]
		if p.per == metering.PeriodNone {
			require.Zero(t, b.spent, "seed %d: %v: a project without periods gives no allowance", seed, k)
		}
		require.LessOrEqual(t, b.spent, p.amt, "seed %d: %v: more than one allowance", seed, k)
		if p.limit >= 0 {
			require.LessOrEqual(t, b.drawn, p.limit, "seed %d: %v: more than the pool limit", seed, k)
		}
	}
	for k, b := range m.budgets {
		if b.spent == 0 && b.drawn == 0 {
			delete(m.budgets, k)
		}
	}
	for k, b := range ledger {
		if b.spent == 0 && b.drawn == 0 {
			delete(ledger, k)
		}
	}
	require.Equal(t, m.budgets, ledger, "seed %d: allowance and pool spent per user, project and period", seed)
	t.Logf("seed %d: %d moves (%d back into an allowance or pool draw already used that period), %d charges (%d refused), %d budgets used",
		seed, moves, returns, charges, refused, len(ledger))
}
