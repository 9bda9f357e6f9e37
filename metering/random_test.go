package metering_test

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// The model: what design.md says the balances must be, kept in plain Go.

type mProject struct {
	name   string
	id     int64
	amt    metering.Credits
	per    metering.Period
	loc    *time.Location
	poolOn bool
	limit  metering.Credits // -1: none
	pb     metering.Credits
}

type mUser struct {
	name, key string
	id        int64
	proj      *mProject // nil: unassigned
	// Stored balances, as Redis must hold them.
	a       metering.Credits
	ap      int64
	pu      metering.Credits
	aw, pr  metering.Credits
	mg      metering.Credits
	partner bool // grants run only for partners
	gm      int64
}

func (u *mUser) loc() *time.Location {
	if u.proj == nil {
		return time.UTC
	}
	return u.proj.loc
}

// live is a user's position at now: lazy refill and grants applied.
type live struct {
	a         metering.Credits
	ap        int64
	pu        metering.Credits
	pr        metering.Credits
	gm        int64
	poolAvail metering.Credits
	effective metering.Credits
}

func (u *mUser) live(now time.Time) live {
	l := live{a: u.a, ap: u.ap, pu: u.pu, pr: u.pr, gm: u.gm}
	if p := u.proj; p != nil && p.per != metering.PeriodNone {
		if start := metering.PeriodStart(p.per, p.loc, now); l.ap < start {
			l.a, l.pu, l.ap = p.amt, 0, start // unused allowance does not roll over
		}
	}
	if month := metering.MonthIndex(u.loc(), now); u.partner && u.mg > 0 && l.gm < month {
		l.pr += u.mg * metering.Credits(month-l.gm) // every missed month, once
		l.gm = month
	}
	if p := u.proj; p != nil && p.poolOn {
		l.poolAvail = p.pb
		if p.limit >= 0 && p.limit-l.pu < l.poolAvail {
			l.poolAvail = p.limit - l.pu
		}
		l.poolAvail = max(l.poolAvail, 0)
	}
	l.effective = l.a + l.poolAvail + u.aw + l.pr
	return l
}

// charge applies the waterfall: allowance, pool (within the per-user
// limit), awarded, purchased; all or nothing.
func (u *mUser) charge(now time.Time, cost metering.Credits) metering.ChargeResult {
	l := u.live(now)
	if cost > l.effective {
		return metering.ChargeResult{Status: metering.Insufficient, Remaining: l.effective}
	}
	rest := cost
	take := func(avail metering.Credits) metering.Credits {
		t := min(rest, avail)
		rest -= t
		return t
	}
	s := metering.Split{}
	s.Allowance = take(l.a)
	s.Pool = take(l.poolAvail)
	s.Awarded = take(u.aw)
	s.Purchased = take(l.pr)
	u.a, u.ap, u.pu, u.gm = l.a-s.Allowance, l.ap, l.pu+s.Pool, l.gm
	u.aw -= s.Awarded
	u.pr = l.pr - s.Purchased
	if s.Pool > 0 {
		u.proj.pb -= s.Pool
	}
	return metering.ChargeResult{Status: metering.Charged, Remaining: l.effective - cost, Taken: s}
}

// TestRandomOperations runs seeded random sequences of charges, admin
// adjustments, pool changes, clock jumps over local period boundaries and
// reconciler runs against the model, checking after every step that Redis
// holds the model's balances, that the admin view shows the model's live
// position, and that Postgres plus the unreconciled events equals Redis.
// Re-run a failure with TOLLGATE_RANDOM_SEED=<seed>.
func TestRandomOperations(t *testing.T) {
	t.Parallel()
	meteringtest.RandomSeeds(t, 3, func(t *testing.T, seed int64) { runRandom(t, seed, 300, false) })
}

// TestRandomOperationsLeased is the same with fixed-cost charges served
// from credit leases (one gateway: leases on several gateways keep the
// totals exact, TestLeasedChargesAreExactAcrossGateways, but one's lease
// may hold allowance while another's request draws the pool). Every
// charge's outcome and split must be the model's; balances are compared
// every tenth step, once the leases are back (they are taken out of Redis
// while they run). Leases also end before each reservation, which would
// otherwise draw past the credits a lease holds, as past another
// reservation's.
func TestRandomOperationsLeased(t *testing.T) {
	t.Parallel()
	meteringtest.RandomSeeds(t, 3, func(t *testing.T, seed int64) { runRandom(t, seed, 300, true) })
}

func runRandom(t *testing.T, seed int64, steps int, leased bool) {
	rng := rand.New(rand.NewSource(seed))
	start := utc(2026, 1, 1, 0, 0, 0).Add(time.Duration(rng.Int63n(int64(365 * 24 * time.Hour))))
	var w *world
	if leased {
		b := meteringtest.New(t, meteringtest.Options{Clock: meteringtest.NewClock(start),
			Leases: metering.LeaseConfig{Flush: time.Hour, Idle: time.Hour}})
		w = &world{Bundle: b, ctx: context.Background()}
	} else {
		w = newWorld(t, start)
	}
	engines := []*metering.Engine{w.Engine, w.NewEngine(t)}
	if leased {
		w.Engine.StartLeases()
		require.Eventually(t, w.Engine.LeaseAliveForTest, 30*time.Second, 10*time.Millisecond, "first heartbeat")
	}
	rec := w.reconciler(t, metering.ReconcilerConfig{Consumer: "random", BatchSize: 1 + rng.Intn(8), Block: time.Millisecond})

	pick := func(ps ...metering.Period) metering.Period { return ps[rng.Intn(len(ps))] }
	projects := []*mProject{
		{name: "berlin", amt: cr(5), per: pick(metering.PeriodDaily, metering.PeriodWeekly), loc: mustLoc(t, "Europe/Berlin"),
			poolOn: true, limit: cr(4), pb: cr(30)},
		{name: "auckland", amt: cr(8), per: pick(metering.PeriodWeekly, metering.PeriodMonthly, metering.PeriodDaily),
			loc: mustLoc(t, "Pacific/Auckland"), poolOn: rng.Intn(4) > 0, limit: -1, pb: cr(20)},
	}
	for _, p := range projects {
		spec := metering.ProjectSpec{Name: p.name, AllowanceAmount: p.amt, Period: p.per, TimeZone: p.loc.String(),
			PoolEnabled: p.poolOn, PoolBalance: p.pb}
		if p.limit >= 0 {
			spec.PoolPerUserLimit = ptr(p.limit)
		}
		p.id = w.project(t, spec).ID
	}
	var users []*mUser
	for i, proj := range []*mProject{projects[0], projects[0], projects[1], projects[1], nil} {
		u := &mUser{name: fmt.Sprintf("u%d", i), proj: proj, ap: -1,
			aw: metering.Credits(rng.Int63n(int64(cr(6)))), pr: metering.Credits(rng.Int63n(int64(cr(6))))}
		if rng.Intn(2) == 0 {
			u.mg = cr(1 + rng.Int63n(3))
		}
		u.partner = rng.Intn(3) > 0
		spec := metering.UserSpec{Username: u.name, InitialCredits: u.aw, Purchased: u.pr, MonthlyGrant: u.mg, Partner: u.partner}
		if proj != nil {
			spec.Project = proj.name
		}
		u.key = w.user(t, spec)
		u.id = w.view(t, u.name).ID
		u.gm = metering.MonthIndex(u.loc(), start) // the first grant is on the next 1st
		users = append(users, u)
	}

	check := func(step int, what string) {
		t.Helper()
		if leased {
			if step%10 != 0 {
				return
			}
			w.Engine.EndLeases(w.ctx)
		}
		ctx := fmt.Sprintf("seed %d step %d (%s) at %s", seed, step, what, w.Clock.Now().Format(time.RFC3339))
		now := w.Clock.Now()
		redisPools := map[*mProject]*mProject{nil: nil}
		for _, p := range projects {
			pb, err := w.Redis.HGet(w.ctx, w.Engine.Keys().ProjectShard(p.id).Project(p.id), "pb").Int64()
			require.NoError(t, err)
			require.Equal(t, int64(p.pb), pb, "%s: pool of %s", ctx, p.name)
			require.GreaterOrEqual(t, pb, int64(0))
			rp := *p
			rp.pb = metering.Credits(pb)
			redisPools[p] = &rp
		}
		for _, u := range users {
			raw := w.redisUser(t, u.id)
			for f, v := range raw {
				if f != "ap" && f != "gm" {
					require.GreaterOrEqual(t, v, int64(0), "%s: %s.%s negative", ctx, u.name, f)
				}
			}
			// Redis may or may not have written a due refill or grant yet
			// (they are lazy), so compare positions as of now.
			r := &mUser{proj: redisPools[u.proj], mg: u.mg, partner: u.partner, a: metering.Credits(raw["a"]), ap: raw["ap"],
				pu: metering.Credits(raw["pu"]), aw: metering.Credits(raw["aw"]), pr: metering.Credits(raw["pr"]), gm: raw["gm"]}
			require.Equal(t, u.live(now), r.live(now), "%s: Redis position of %s", ctx, u.name)
			require.Equal(t, u.aw, r.aw, "%s: awarded of %s", ctx, u.name)
		}
		views, _, err := w.Engine.FindUsers(w.ctx, metering.UserQuery{Limit: 100})
		require.NoError(t, err)
		require.Len(t, views, len(users))
		for i, v := range views {
			l := users[i].live(now)
			require.Equal(t, metering.Balances{Allowance: l.a, PoolAvailable: l.poolAvail, Awarded: users[i].aw,
				Purchased: l.pr, Effective: l.effective}, v.Live, "%s: live view of %s", ctx, v.Username)
		}
		w.checkLedger(t, ctx)
	}

	check(0, "start")
	var open []*mRes
	for step := 1; step <= steps; step++ {
		var what string
		switch op := rng.Intn(100); {
		case op < 50 && op >= 36: // reserve or settle (variable cost)
			if leased {
				w.Engine.EndLeases(w.ctx)
			}
			what = w.randomReserveSettle(t, rng, engines, users, &open)
		case op < 36: // charge
			u := users[rng.Intn(len(users))]
			var cost metering.Credits
			switch rng.Intn(6) {
			case 0:
				cost = cr(1 + rng.Int63n(10))
			case 1:
				cost = metering.Credits(rng.Int63n(int64(cr(30))))
			case 2:
				cost = 0
			default:
				cost = 1 + metering.Credits(rng.Int63n(int64(cr(3))))
			}
			eng := rng.Intn(len(engines))
			var got metering.ChargeResult
			var err error
			if leased {
				what = fmt.Sprintf("leased charge %s %s", u.name, cost)
				got, err = w.Engine.ChargeLeased(w.ctx, u.key, cost, "POST /v1/chat/completions")
			} else {
				what = fmt.Sprintf("charge %s %s via engine %d", u.name, cost, eng)
				got, err = engines[eng].Charge(w.ctx, u.key, cost, "POST /v1/chat/completions")
			}
			require.NoError(t, err, what)
			want := u.charge(w.Clock.Now(), cost)
			want.UserID, want.Username = u.id, u.name
			if u.proj != nil {
				want.Project = u.proj.name
			}
			if want.Status == metering.Insufficient {
				want.Taken = metering.Split{}
			}
			if leased && got.Status == metering.Charged {
				// What is left after a leased request is as of its
				// lease's take: other users' draws on the shared pool
				// since then show with the next lease.
				got.Remaining = want.Remaining
			}
			require.Equal(t, want, got, "seed %d step %d: %s", seed, step, what)
		case op < 62: // admin adjustment of personal credits
			u := users[rng.Intn(len(users))]
			// The bucket as the admin sees it: due grants count.
			l := u.live(w.Clock.Now())
			bucket, bal := metering.BucketAwarded, u.aw
			if rng.Intn(2) == 0 {
				bucket, bal = metering.BucketPurchased, l.pr
			}
			delta := metering.Credits(rng.Int63n(int64(cr(8)))) - cr(4)
			if delta == 0 {
				delta = 1
			}
			what = fmt.Sprintf("adjust %s %s (%s) by %s", u.name, bucket, bal, delta)
			_, err := w.Engine.AdjustCredits(w.ctx, "random", u.name, bucket, delta, "random")
			if bal+delta < 0 {
				require.ErrorIs(t, err, metering.ErrInsufficient, what)
			} else {
				require.NoError(t, err, what)
				u.a, u.ap, u.pu, u.pr, u.gm = l.a, l.ap, l.pu, l.pr, l.gm
				if bucket == metering.BucketAwarded {
					u.aw += delta
				} else {
					u.pr += delta
				}
			}
		case op < 70: // pool adjustment
			p := projects[rng.Intn(len(projects))]
			delta := metering.Credits(rng.Int63n(int64(cr(20)))) - cr(8)
			if delta == 0 {
				delta = -1
			}
			what = fmt.Sprintf("pool %s by %s", p.name, delta)
			_, err := w.Engine.AdjustPool(w.ctx, "random", p.name, delta, "random")
			if p.pb+delta < 0 {
				require.ErrorIs(t, err, metering.ErrInsufficient, what)
			} else {
				require.NoError(t, err, what)
				p.pb += delta
			}
		case op < 85: // the clock moves
			now := w.Clock.Now()
			switch rng.Intn(4) {
			case 0:
				w.Clock.Advance(time.Duration(1+rng.Intn(180)) * time.Minute)
			case 1:
				w.Clock.Advance(time.Duration(1+rng.Intn(72)) * time.Hour)
			case 2:
				w.Clock.Advance(time.Duration(4+rng.Intn(40)) * 24 * time.Hour)
			default: // to just before or just after a local boundary
				p := projects[rng.Intn(len(projects))]
				per := p.per
				if rng.Intn(3) == 0 {
					per = metering.PeriodMonthly // grants roll monthly
				}
				b := meteringtest.NextPeriodStart(per, p.loc, now)
				w.Clock.Set(b.Add(time.Duration(rng.Intn(4001)-2000) * time.Millisecond))
				if !w.Clock.Now().After(now) {
					w.Clock.Set(now.Add(time.Second))
				}
			}
			what = fmt.Sprintf("clock %s -> %s", now.Format(time.RFC3339), w.Clock.Now().Format(time.RFC3339Nano))
		default: // the reconciler gets a turn
			n, err := rec.RunOnce(w.ctx)
			require.NoError(t, err)
			what = fmt.Sprintf("reconcile (%d entries)", n)
		}
		check(step, what)
	}

	for len(open) > 0 { // every reservation ends
		w.settleOne(t, rng, engines, &open, 0)
	}
	if leased {
		w.Engine.EndLeases(w.ctx)
		check(steps+10-steps%10, "leases ended")
	}
	w.drainAndCheck(t)
	require.Empty(t, w.rollupMismatches(t))
	for _, u := range users {
		var a, ap, pu, aw, pr, gm int64
		require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT allowance_remaining, allowance_period, pool_used, awarded, purchased, grant_month
			FROM users WHERE id = $1`, u.id).Scan(&a, &ap, &pu, &aw, &pr, &gm))
		require.Equal(t, []int64{int64(u.a), u.ap, int64(u.pu), int64(u.aw), int64(u.pr), u.gm}, []int64{a, ap, pu, aw, pr, gm},
			"seed %d: Postgres balances of %s after draining", seed, u.name)
	}
	for _, p := range projects {
		require.Equal(t, int64(p.pb), w.pgInt(t, `SELECT pool_balance FROM projects WHERE id = $1`, p.id))
	}
}
