package metering_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Helpers shared by the period, concurrency, reconciler, random and cold
// load tests.

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

type refillStep struct {
	at     time.Time
	refill bool // the project's local period rolled since the previous step
	why    string
}

// TestAllowanceRefillsAtLocalBoundary walks a user's clock just before and
// just after the project's local period boundary, in zones east of UTC
// (the local day rolls while UTC has not) and west of it (UTC rolls first,
// which must not refill). Every step charges three times; refills must
// happen exactly once per local period and never carry the unused part over.
func TestAllowanceRefillsAtLocalBoundary(t *testing.T) {
	t.Parallel()
	const amount = 20
	cases := []struct {
		name     string
		tz       string
		period   metering.Period
		boundary time.Time // local start of the period crossed, as UTC
		steps    []refillStep
	}{
		{
			name: "daily Berlin winter", tz: "Europe/Berlin", period: metering.PeriodDaily,
			boundary: utc(2026, 1, 15, 23, 0, 0), // Jan 16 00:00 CET
			steps: []refillStep{
				{utc(2026, 1, 15, 10, 0, 0), true, "first charge of a new user"},
				{utc(2026, 1, 15, 22, 59, 59), false, "23:59:59 in Berlin"},
				{utc(2026, 1, 15, 23, 0, 1), true, "00:00:01 in Berlin, UTC still on the 15th"},
				{utc(2026, 1, 16, 0, 0, 1), false, "UTC day rolls, Berlin day does not"},
				{utc(2026, 1, 16, 22, 59, 58), false, "end of the Berlin day"},
			},
		},
		{
			name: "daily Berlin over spring DST", tz: "Europe/Berlin", period: metering.PeriodDaily,
			boundary: utc(2026, 3, 29, 22, 0, 0), // Mar 30 00:00 CEST, after a 23-hour day
			steps: []refillStep{
				{utc(2026, 3, 29, 10, 0, 0), true, "first charge"},
				{utc(2026, 3, 29, 21, 59, 59), false, "23:59:59 CEST"},
				{utc(2026, 3, 29, 22, 0, 1), true, "00:00:01 CEST"},
				{utc(2026, 3, 30, 0, 0, 1), false, "UTC day rolls"},
			},
		},
		{
			name: "daily Auckland", tz: "Pacific/Auckland", period: metering.PeriodDaily,
			boundary: utc(2026, 1, 15, 11, 0, 0), // Jan 16 00:00 NZDT
			steps: []refillStep{
				{utc(2026, 1, 14, 20, 0, 0), true, "first charge, Jan 15 09:00 NZDT"},
				{utc(2026, 1, 15, 0, 0, 1), false, "UTC day rolls, Auckland day does not"},
				{utc(2026, 1, 15, 10, 59, 59), false, "23:59:59 NZDT"},
				{utc(2026, 1, 15, 11, 0, 1), true, "00:00:01 NZDT, UTC still on the 15th"},
			},
		},
		{
			name: "daily New York", tz: "America/New_York", period: metering.PeriodDaily,
			boundary: utc(2026, 1, 16, 5, 0, 0), // Jan 16 00:00 EST
			steps: []refillStep{
				{utc(2026, 1, 15, 18, 0, 0), true, "first charge"},
				{utc(2026, 1, 16, 0, 0, 1), false, "UTC already rolled, New York has not"},
				{utc(2026, 1, 16, 4, 59, 59), false, "23:59:59 EST"},
				{utc(2026, 1, 16, 5, 0, 1), true, "00:00:01 EST"},
			},
		},
		{
			name: "weekly Berlin", tz: "Europe/Berlin", period: metering.PeriodWeekly,
			boundary: utc(2026, 3, 1, 23, 0, 0), // Monday Mar 2 00:00 CET
			steps: []refillStep{
				{utc(2026, 2, 28, 12, 0, 0), true, "first charge, Saturday"},
				{utc(2026, 3, 1, 12, 0, 0), false, "Sunday does not start a week"},
				{utc(2026, 3, 1, 22, 59, 59), false, "Sunday 23:59:59 in Berlin"},
				{utc(2026, 3, 1, 23, 0, 1), true, "Monday 00:00:01 in Berlin, Sunday in UTC"},
				{utc(2026, 3, 2, 0, 0, 1), false, "UTC Monday"},
				{utc(2026, 3, 8, 22, 59, 59), false, "last second of the Berlin week"},
			},
		},
		{
			name: "weekly Auckland", tz: "Pacific/Auckland", period: metering.PeriodWeekly,
			boundary: utc(2026, 3, 1, 11, 0, 0), // Monday Mar 2 00:00 NZDT
			steps: []refillStep{
				{utc(2026, 2, 26, 0, 0, 0), true, "first charge, Thursday"},
				{utc(2026, 2, 28, 20, 0, 0), false, "Sunday morning in Auckland"},
				{utc(2026, 3, 1, 10, 59, 59), false, "Sunday 23:59:59 NZDT"},
				{utc(2026, 3, 1, 11, 0, 1), true, "Monday 00:00:01 NZDT, Sunday in UTC"},
				{utc(2026, 3, 2, 0, 0, 1), false, "UTC Monday"},
			},
		},
		{
			name: "monthly Auckland", tz: "Pacific/Auckland", period: metering.PeriodMonthly,
			boundary: utc(2026, 2, 28, 11, 0, 0), // Mar 1 00:00 NZDT
			steps: []refillStep{
				{utc(2026, 2, 10, 0, 0, 0), true, "first charge"},
				{utc(2026, 2, 28, 10, 59, 59), false, "Feb 28 23:59:59 NZDT"},
				{utc(2026, 2, 28, 11, 0, 1), true, "Mar 1 00:00:01 NZDT, still February in UTC"},
				{utc(2026, 3, 1, 0, 0, 1), false, "UTC month rolls"},
			},
		},
		{
			name: "monthly Berlin over DST", tz: "Europe/Berlin", period: metering.PeriodMonthly,
			boundary: utc(2026, 3, 31, 22, 0, 0), // Apr 1 00:00 CEST
			steps: []refillStep{
				{utc(2026, 3, 15, 0, 0, 0), true, "first charge, CET"},
				{utc(2026, 3, 31, 21, 59, 59), false, "Mar 31 23:59:59 CEST"},
				{utc(2026, 3, 31, 22, 0, 1), true, "Apr 1 00:00:01 CEST, still March in UTC"},
				{utc(2026, 4, 1, 0, 0, 1), false, "UTC month rolls"},
			},
		},
		{
			name: "monthly New York", tz: "America/New_York", period: metering.PeriodMonthly,
			boundary: utc(2026, 2, 1, 5, 0, 0), // Feb 1 00:00 EST
			steps: []refillStep{
				{utc(2026, 1, 20, 0, 0, 0), true, "first charge"},
				{utc(2026, 2, 1, 0, 0, 1), false, "UTC already in February, New York is not"},
				{utc(2026, 2, 1, 4, 59, 59), false, "Jan 31 23:59:59 EST"},
				{utc(2026, 2, 1, 5, 0, 1), true, "Feb 1 00:00:01 EST"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			loc := mustLoc(t, c.tz)
			// The test's own data: the boundary is a local period start.
			lb := c.boundary.In(loc)
			require.Equal(t, 0, lb.Hour()*3600+lb.Minute()*60+lb.Second(), "boundary must be local midnight")
			switch c.period {
			case metering.PeriodWeekly:
				require.Equal(t, time.Monday, lb.Weekday())
			case metering.PeriodMonthly:
				require.Equal(t, 1, lb.Day())
			}

			w := newWorld(t, c.steps[0].at)
			w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(amount), Period: c.period, TimeZone: c.tz})
			key := w.user(t, metering.UserSpec{Username: "u", Project: "p", Purchased: cr(100)})
			id := w.view(t, "u").ID

			var allowance metering.Credits
			refills := 0
			for _, s := range c.steps {
				w.Clock.Set(s.at)
				if s.refill {
					allowance = cr(amount) // the unused part does not roll over
					refills++
				}
				v := w.view(t, "u")
				require.Equalf(t, allowance, v.Live.Allowance, "%s: %s (local %s)", c.name, s.why, s.at.In(loc))
				require.Equal(t, cr(100), v.Live.Purchased)
				require.Equal(t, allowance+cr(100), v.Live.Effective)
				for i := 0; i < 3; i++ {
					res := w.charge(t, key, cr(1))
					require.Equal(t, metering.Charged, res.Status)
					require.Equalf(t, metering.Split{Allowance: cr(1)}, res.Taken, "%s: %s", c.name, s.why)
					allowance -= cr(1)
				}
				require.Equal(t, int64(allowance), w.redisUser(t, id)["a"], "Redis holds the allowance after the charges")
			}
			w.drainAndCheck(t)
			require.Equal(t, int64(refills), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'refill'`),
				"exactly one refill per local period, however many charges")
			require.Equal(t, c.boundary.Unix(), w.pgInt(t, `SELECT allowance_period FROM users WHERE id = $1`, id))
			require.Equal(t, int64(allowance), w.pgInt(t, `SELECT allowance_remaining FROM users WHERE id = $1`, id))
			require.Equal(t, int64(cr(100)), w.pgInt(t, `SELECT purchased FROM users WHERE id = $1`, id),
				"every charge came from the allowance")
		})
	}
}

// TestAllowanceSkippedPeriodsRefillOnce: a user idle for many periods gets
// one allowance, not one per missed period.
func TestAllowanceSkippedPeriodsRefillOnce(t *testing.T) {
	t.Parallel()
	start := utc(2026, 1, 5, 9, 0, 0)
	w := newWorld(t, start)
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(10), Period: metering.PeriodDaily,
		TimeZone: "Europe/Berlin", PoolEnabled: true, PoolBalance: cr(100), PoolPerUserLimit: ptr(cr(4))})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p"})
	res := w.charge(t, key, cr(12))
	require.Equal(t, metering.Split{Allowance: cr(10), Pool: cr(2)}, res.Taken)
	require.Equal(t, cr(2), w.view(t, "u").Live.PoolAvailable, "2 of the 4 pool credits left today")

	w.Clock.Advance(40 * 24 * time.Hour)
	v := w.view(t, "u")
	require.Equal(t, cr(10), v.Live.Allowance, "one allowance after 40 idle days")
	require.Equal(t, cr(4), v.Live.PoolAvailable, "the per-user pool limit restarts with the period")
	res = w.charge(t, key, cr(14))
	require.Equal(t, metering.Split{Allowance: cr(10), Pool: cr(4)}, res.Taken)
	require.Equal(t, metering.Insufficient, w.charge(t, key, 1).Status)

	w.drainAndCheck(t)
	require.Equal(t, int64(2), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'refill'`))
	require.Equal(t, int64(cr(94)), w.pgInt(t, `SELECT pool_balance FROM projects WHERE name = 'p'`))
	require.Equal(t, int64(cr(4)), w.pgInt(t, `SELECT pool_used FROM users WHERE username = 'u'`))
}

// TestPeriodNoneNeverRefills: a project without a period never adds
// allowance, whatever the clock does.
func TestPeriodNoneNeverRefills(t *testing.T) {
	t.Parallel()
	w := newWorld(t, utc(2026, 1, 31, 22, 0, 0))
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(10), Period: metering.PeriodNone, TimeZone: "Pacific/Auckland"})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p", Purchased: cr(50)})
	before := w.view(t, "u").Live.Allowance
	spent := metering.Credits(0)
	for _, step := range []time.Duration{0, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 31 * 24 * time.Hour, 400 * 24 * time.Hour} {
		w.Clock.Advance(step)
		res := w.charge(t, key, cr(2))
		require.Equal(t, metering.Charged, res.Status)
		spent += res.Taken.Allowance
		v := w.view(t, "u")
		require.Equal(t, before-spent, v.Live.Allowance, "allowance after %s", w.Clock.Now())
		require.LessOrEqual(t, v.Live.Allowance, before)
	}
	w.drainAndCheck(t)
	require.Equal(t, int64(0), w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'refill'`))
	require.Equal(t, int64(-1), w.pgInt(t, `SELECT allowance_period FROM users WHERE username = 'u'`))
}

// TestMonthlyGrantsFollowProjectTimeZone: a partner's grant goes to
// purchased from the 1st after creation, missed months all at once and
// exactly once, with the month boundary of the project's zone (UTC when
// unassigned).
func TestMonthlyGrantsFollowProjectTimeZone(t *testing.T) {
	t.Parallel()
	w := newWorld(t, utc(2026, 3, 10, 12, 0, 0))
	w.project(t, metering.ProjectSpec{Name: "berlin", TimeZone: "Europe/Berlin"})
	bk := w.user(t, metering.UserSpec{Username: "b", Project: "berlin", MonthlyGrant: cr(10), Partner: true})
	uk := w.user(t, metering.UserSpec{Username: "solo", MonthlyGrant: cr(10), Partner: true})
	bid, uid := w.view(t, "b").ID, w.view(t, "solo").ID
	march := metering.MonthIndex(time.UTC, utc(2026, 3, 10, 0, 0, 0))

	// Nothing at creation: March owes nothing, April 1st pays first.
	require.Equal(t, metering.Credits(0), w.view(t, "b").Live.Purchased)
	require.Equal(t, utc(2026, 3, 31, 22, 0, 0), w.view(t, "b").NextGrantAt.UTC(), "April 1st in Berlin")
	require.Equal(t, utc(2026, 4, 1, 0, 0, 0), w.view(t, "solo").NextGrantAt.UTC())
	require.Equal(t, march, w.redisUser(t, bid)["gm"])

	// April begins in Berlin two hours before UTC. A peek shows the grant
	// without paying it; the first charge pays it, once.
	w.Clock.Set(utc(2026, 3, 31, 22, 0, 1))
	for i := 0; i < 2; i++ {
		require.Equal(t, cr(10), w.view(t, "b").Live.Purchased)
	}
	require.Equal(t, march, w.redisUser(t, bid)["gm"], "a peek writes nothing")
	res := w.charge(t, bk, cr(1))
	require.Equal(t, metering.Split{Purchased: cr(1)}, res.Taken)
	require.Equal(t, cr(9), res.Remaining)
	require.Equal(t, cr(8), w.charge(t, bk, cr(1)).Remaining, "the same month pays nothing more")
	require.Equal(t, metering.Insufficient, w.charge(t, uk, cr(1)).Status, "still March in UTC")
	w.Clock.Set(utc(2026, 4, 1, 0, 0, 1))
	require.Equal(t, cr(9), w.charge(t, uk, cr(1)).Remaining, "April in UTC")
	require.Equal(t, cr(8), w.charge(t, uk, cr(1)).Remaining)
	require.Equal(t, cr(7), w.charge(t, bk, cr(1)).Remaining, "no second April grant when UTC rolls")

	// May and June are paid together, once.
	w.Clock.Set(utc(2026, 6, 30, 21, 59, 59))
	require.Equal(t, cr(27), w.view(t, "b").Live.Purchased)
	require.Equal(t, cr(26), w.charge(t, bk, cr(1)).Remaining)
	require.Equal(t, cr(27), w.charge(t, uk, cr(1)).Remaining)
	require.Equal(t, march+3, w.redisUser(t, bid)["gm"])

	// July starts at 22:00 UTC on June 30 in Berlin (CEST), 00:00 in UTC.
	w.Clock.Set(utc(2026, 6, 30, 22, 0, 1))
	require.Equal(t, cr(36), w.view(t, "b").Live.Purchased, "July has begun in Berlin")
	require.Equal(t, cr(27), w.view(t, "solo").Live.Purchased, "but not in UTC")
	require.Equal(t, utc(2026, 7, 31, 22, 0, 0), w.view(t, "b").NextGrantAt.UTC(), "August 1st in Berlin")
	require.Equal(t, cr(35), w.charge(t, bk, cr(1)).Remaining)
	require.Equal(t, cr(26), w.charge(t, uk, cr(1)).Remaining)
	w.Clock.Set(utc(2026, 7, 1, 0, 0, 1))
	require.Equal(t, cr(34), w.charge(t, bk, cr(1)).Remaining, "no second July grant when UTC rolls")
	require.Equal(t, cr(35), w.charge(t, uk, cr(1)).Remaining, "the unassigned user's July grant")

	w.drainAndCheck(t)
	for _, c := range []struct {
		id     int64
		grants int64
	}{{bid, 3}, {uid, 3}} {
		require.Equal(t, c.grants, w.pgInt(t, `SELECT count(*) FROM events WHERE kind = 'grant' AND user_id = $1`, c.id))
		require.Equal(t, int64(cr(40)), w.pgInt(t, `SELECT coalesce(sum(d_purchased), 0) FROM events WHERE kind = 'grant' AND user_id = $1`, c.id),
			"April, May and June, and July: four grants of 10")
		require.Equal(t, march+4, w.pgInt(t, `SELECT grant_month FROM users WHERE id = $1`, c.id))
	}
}

// TestMonthlyGrantPaidOnceAfterManyMonths: a partner first seen fourteen
// months after creation, across a new year, gets the fourteen 1sts since
// then, each once.
func TestMonthlyGrantPaidOnceAfterManyMonths(t *testing.T) {
	t.Parallel()
	w := newWorld(t, utc(2026, 3, 31, 23, 30, 0)) // April in Auckland already
	w.project(t, metering.ProjectSpec{Name: "nz", TimeZone: "Pacific/Auckland"})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "nz", MonthlyGrant: cr(5), Partner: true})
	w.Clock.Set(utc(2027, 6, 10, 0, 0, 0)) // June 10, 2027 in Auckland: May 2026..June 2027
	require.Equal(t, cr(70), w.view(t, "u").Live.Purchased)
	require.Equal(t, cr(69), w.charge(t, key, cr(1)).Remaining)
	require.Equal(t, cr(68), w.charge(t, key, cr(1)).Remaining)
	w.drainAndCheck(t)
	require.Equal(t, int64(cr(70)), w.pgInt(t, `SELECT coalesce(sum(d_purchased), 0) FROM events WHERE kind = 'grant'`))
}

// TestNegativeAdjustmentCoversDueGrant: the admin view counts a grant that
// is due but not yet written to Redis (the grant is lazy). Removing the
// purchased credits the admin sees must work: the adjustment has to apply
// due grants first, as a charge does.
func TestNegativeAdjustmentCoversDueGrant(t *testing.T) {
	t.Parallel()
	w := newWorld(t, utc(2026, 3, 10, 12, 0, 0))
	w.user(t, metering.UserSpec{Username: "u", MonthlyGrant: cr(10), Partner: true})
	w.Clock.Set(utc(2026, 4, 2, 0, 0, 0))
	require.Equal(t, cr(10), w.view(t, "u").Live.Purchased, "the admin sees 10 purchased")
	v, err := w.Engine.AdjustCredits(w.ctx, "test", "u", metering.BucketPurchased, -cr(10), "take back")
	require.Falsef(t, errors.Is(err, metering.ErrInsufficient),
		"removing the 10 purchased credits the view shows was refused: %v", err)
	require.NoError(t, err)
	require.Equal(t, metering.Credits(0), v.Live.Purchased)
	w.drainAndCheck(t)
}
