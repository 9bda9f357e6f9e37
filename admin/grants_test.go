package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Monthly grants as the admin API shows them: paid on the 1st of every
// month in the project's time zone, only while the user is a partner,
// first on the 1st after the grant is set.

// grantView reads a user's purchased credits and next_grant_at (nil or
// the time in UTC).
func (e *env) grantView(t *testing.T, name string) (purchased string, next *time.Time) {
	t.Helper()
	u := e.admin(t, "GET", "/users/"+name, "").requireStatus(t, http.StatusOK).body
	if u["next_grant_at"] != nil {
		n := requireRFC3339(t, u["next_grant_at"]).UTC()
		next = &n
	}
	return string(u["purchased"].(json.Number)), next
}

// requireGrant checks a user's purchased credits and next grant.
func (e *env) requireGrant(t *testing.T, name, purchased string, next *time.Time, msg string) {
	t.Helper()
	got, gotNext := e.grantView(t, name)
	require.Equal(t, purchased, got, "%s: purchased of %s at %s", msg, name, e.Clock.Now().Format(time.RFC3339))
	require.Equal(t, next, gotNext, "%s: next_grant_at of %s at %s", msg, name, e.Clock.Now().Format(time.RFC3339))
}

func at(y int, m time.Month, d, h, min, s int) *time.Time {
	t := time.Date(y, m, d, h, min, s, 0, time.UTC)
	return &t
}

// grantLedger is what Postgres holds for a user's grants: how many grant
// events, their sum (credits) and the user's grant month.
func (e *env) grantLedger(t *testing.T, name string) (events int, total string, month int64) {
	t.Helper()
	var sum int64
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT count(*), coalesce(sum(d_purchased), 0) FROM events
		WHERE kind = 'grant' AND username = $1`, name).Scan(&events, &sum))
	require.NoError(t, e.DB.QueryRow(e.ctx, `SELECT grant_month FROM users WHERE username = $1`, name).Scan(&month))
	return events, metering.Credits(sum).String(), month
}

func monthIndex(y int, m time.Month) int64 { return int64(y)*12 + int64(m) - 1 }

// A partner created mid-month gets nothing at creation and its first
// grant on the next 1st in the project's zone (Los Angeles: 08:00 UTC in
// winter), then one each 1st, across the new year; a user who is not a
// partner gets none.
func TestGrantPaidOnTheFirstOnlyForPartners(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"la","allowance":{"timezone":"America/Los_Angeles"}}`).requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"ann","project":"la","monthly_grant":10,"partner":true,"purchased":1}`)
	e.createUserKey(t, `{"username":"bob","project":"la","monthly_grant":10,"purchased":1}`)
	e.requireGrant(t, "ann", "1", at(2026, 12, 1, 8, 0, 0), "created")
	e.requireGrant(t, "bob", "1", nil, "not a partner")

	e.Clock.Set(time.Date(2026, 12, 1, 7, 59, 59, 0, time.UTC))
	e.requireGrant(t, "ann", "1", at(2026, 12, 1, 8, 0, 0), "still November 30 in Los Angeles")
	e.Clock.Set(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "11", at(2027, 1, 1, 8, 0, 0), "December 1st in Los Angeles")
	e.requireGrant(t, "bob", "1", nil, "not a partner")
	res, err := e.Engine.Charge(e.ctx, key, metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Split{Purchased: metering.Micro}, res.Taken)
	e.requireGrant(t, "ann", "10", at(2027, 1, 1, 8, 0, 0), "paid once")

	// Across the new year: January is due on its 1st, once.
	e.Clock.Set(time.Date(2027, 1, 1, 8, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "20", at(2027, 2, 1, 8, 0, 0), "January 1st")
	e.admin(t, "POST", "/projects/la/settle", "").requireStatus(t, http.StatusOK)
	e.admin(t, "POST", "/projects/la/settle", "").requireStatus(t, http.StatusOK)
	e.requireGrant(t, "ann", "20", at(2027, 2, 1, 8, 0, 0), "settled twice")

	e.Drain(t)
	e.AssertConsistent(t)
	n, total, month := e.grantLedger(t, "ann")
	require.Equal(t, 2, n)
	require.Equal(t, "20", total)
	require.Equal(t, monthIndex(2027, time.January), month)
	n, _, _ = e.grantLedger(t, "bob")
	require.Zero(t, n, "no grant for a user who is not a partner")
}

// Turning partner off pays the months already begun and stops there;
// turning it on again starts on the next 1st (never for the months it was
// off, never twice for one month however often it flips); a new amount
// applies from the next month not yet paid.
func TestPartnerOffStopsGrantsAndOnRestartsThem(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	e.createUserKey(t, `{"username":"ann","monthly_grant":5,"partner":true}`)

	e.Clock.Set(time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "10", at(2026, 6, 1, 0, 0, 0), "April and May")
	r := e.admin(t, "PATCH", "/users/ann", `{"partner":false}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("10"), r.body["purchased"], "the months begun are paid")
	require.Nil(t, r.body["next_grant_at"])
	n, total, _ := e.grantLedger(t, "ann")
	require.Equal(t, 1, n, "paid by the PATCH, in the ledger before it answered")
	require.Equal(t, "10", total)

	e.Clock.Set(time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "10", nil, "June to August: not a partner")
	r = e.admin(t, "PATCH", "/users/ann", `{"partner":true}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("10"), r.body["purchased"], "nothing for the months it was off")
	e.Clock.Set(time.Date(2026, 8, 12, 0, 0, 0, 0, time.UTC))
	e.admin(t, "PATCH", "/users/ann", `{"partner":false}`).requireStatus(t, http.StatusOK)
	e.admin(t, "PATCH", "/users/ann", `{"partner":true}`).requireStatus(t, http.StatusOK)
	e.requireGrant(t, "ann", "10", at(2026, 9, 1, 0, 0, 0), "off and on in August")

	e.Clock.Set(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "15", at(2026, 10, 1, 0, 0, 0), "September 1st")
	r = e.admin(t, "PATCH", "/users/ann", `{"monthly_grant":7}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("15"), r.body["purchased"], "September at the old amount")
	e.admin(t, "PATCH", "/users/ann", `{"partner":false}`).requireStatus(t, http.StatusOK)
	e.admin(t, "PATCH", "/users/ann", `{"partner":true}`).requireStatus(t, http.StatusOK)
	e.requireGrant(t, "ann", "15", at(2026, 10, 1, 0, 0, 0), "September is not paid twice")
	e.Clock.Set(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "22", at(2026, 11, 1, 0, 0, 0), "October at the new amount")
	e.admin(t, "PATCH", "/users/ann", `{"monthly_grant":0}`).requireStatus(t, http.StatusOK)
	e.Clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "22", nil, "no amount, no grant")

	e.Drain(t)
	e.AssertConsistent(t)
	_, total, month := e.grantLedger(t, "ann")
	require.Equal(t, "22", total, "April, May, September at 5; October at 7")
	require.Equal(t, monthIndex(2026, time.October), month)
}

// A partner idle for fourteen months, across a new year, is paid the
// fourteen 1sts it missed, each once, when next seen; Tokyo's months
// begin at 15:00 UTC the day before.
func TestGrantIdleFourteenMonths(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"tokyo","allowance":{"timezone":"Asia/Tokyo"}}`).requireStatus(t, http.StatusCreated)
	key := e.createUserKey(t, `{"username":"ann","project":"tokyo","monthly_grant":3,"partner":true}`)
	e.requireGrant(t, "ann", "0", at(2026, 10, 31, 15, 0, 0), "created")

	e.Clock.Set(time.Date(2027, 11, 30, 15, 0, 0, 0, time.UTC)) // December 1st, 2027 in Tokyo
	e.requireGrant(t, "ann", "42", at(2027, 12, 31, 15, 0, 0), "November 2026 to December 2027")
	res, err := e.Engine.Charge(e.ctx, key, 2*metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	require.Equal(t, 40*metering.Micro, res.Remaining)
	res, err = e.Engine.Charge(e.ctx, key, 2*metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, 38*metering.Micro, res.Remaining, "paid once")

	e.Drain(t)
	e.AssertConsistent(t)
	n, total, month := e.grantLedger(t, "ann")
	require.Equal(t, 1, n, "one event for the fourteen months")
	require.Equal(t, "42", total)
	require.Equal(t, monthIndex(2027, time.December), month)
}

// Moving between projects in different time zones pays each month once:
// a grant due in the old zone is paid by the move (it does not vanish
// where that month has not begun), and a month paid in a zone ahead is not
// paid again when it begins in the new one.
func TestGrantAcrossTimeZoneMoves(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"nz","allowance":{"timezone":"Pacific/Auckland"}}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects", `{"name":"la","allowance":{"timezone":"America/Los_Angeles"}}`).requireStatus(t, http.StatusCreated)
	e.createUserKey(t, `{"username":"ann","project":"nz","monthly_grant":10,"partner":true}`)
	e.requireGrant(t, "ann", "0", at(2026, 3, 31, 11, 0, 0), "April 1st in Auckland (NZDT)")

	// April 1st 01:00 in Auckland, March 31st 05:00 in Los Angeles.
	e.Clock.Set(time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "10", at(2026, 4, 30, 12, 0, 0), "April in Auckland")
	r := e.admin(t, "PATCH", "/users/ann", `{"project":"la"}`).requireStatus(t, http.StatusOK)
	require.Equal(t, num("10"), r.body["purchased"], "the move pays April")
	require.True(t, at(2026, 5, 1, 7, 0, 0).Equal(requireRFC3339(t, r.body["next_grant_at"])), "May 1st in Los Angeles (PDT), not April 1st")
	e.Clock.Set(time.Date(2026, 4, 1, 7, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "10", at(2026, 5, 1, 7, 0, 0), "April begins in Los Angeles: already paid")

	// Back to Auckland once May began in Los Angeles: May is paid, once.
	e.Clock.Set(time.Date(2026, 5, 1, 7, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "20", at(2026, 6, 1, 7, 0, 0), "May in Los Angeles")
	e.admin(t, "PATCH", "/users/ann", `{"project":"nz"}`).requireStatus(t, http.StatusOK)
	e.requireGrant(t, "ann", "20", at(2026, 5, 31, 12, 0, 0), "June 1st in Auckland (NZST)")
	// And to Los Angeles while June has begun in Auckland only: June stays paid.
	e.Clock.Set(time.Date(2026, 5, 31, 12, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "30", at(2026, 6, 30, 12, 0, 0), "June in Auckland")
	e.admin(t, "PATCH", "/users/ann", `{"project":"la"}`).requireStatus(t, http.StatusOK)
	e.requireGrant(t, "ann", "30", at(2026, 7, 1, 7, 0, 0), "June paid in Auckland")
	e.Clock.Set(time.Date(2026, 6, 1, 7, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "30", at(2026, 7, 1, 7, 0, 0), "June begins in Los Angeles: already paid")

	e.Drain(t)
	e.AssertConsistent(t)
	_, total, month := e.grantLedger(t, "ann")
	require.Equal(t, "30", total, "April, May and June, once each")
	require.Equal(t, monthIndex(2026, time.June), month)
}

// Grants of imported users follow the same rule: the first on the 1st
// after the import, only for partners.
func TestImportedGrantsStartOnTheFirst(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 12, 31, 20, 0, 0, 0, time.UTC))
	e.admin(t, "POST", "/projects", `{"name":"berlin","allowance":{"timezone":"Europe/Berlin"}}`).requireStatus(t, http.StatusCreated)
	a := e.importCSV(t, "", "username,project,initial_credits,purchased,monthly_grant,partner\n"+
		"ann,berlin,0,1,10,true\n"+
		"bob,berlin,0,1,10,false\n"+
		"cy,,0,0,2,yes\n", http.StatusOK)
	require.Equal(t, 3, a.Created)
	e.requireGrant(t, "ann", "1", at(2026, 12, 31, 23, 0, 0), "January 1st in Berlin")
	e.requireGrant(t, "bob", "1", nil, "not a partner")
	e.requireGrant(t, "cy", "0", at(2027, 1, 1, 0, 0, 0), "January 1st in UTC")

	e.Clock.Set(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC))
	e.requireGrant(t, "ann", "11", at(2027, 1, 31, 23, 0, 0), "the new year in Berlin")
	e.requireGrant(t, "cy", "0", at(2027, 1, 1, 0, 0, 0), "not yet in UTC")
	e.Clock.Set(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	e.requireGrant(t, "cy", "2", at(2027, 2, 1, 0, 0, 0), "the new year in UTC")
	e.admin(t, "POST", "/projects/berlin/settle", "").requireStatus(t, http.StatusOK)

	e.Drain(t)
	e.AssertConsistent(t)
	for name, want := range map[string]string{"ann": "10", "bob": "0", "cy": "0"} {
		_, total, _ := e.grantLedger(t, name)
		require.Equal(t, want, total, "grants of %s in the ledger (cy's is not written yet: nothing has seen it)", name)
	}
}

// A Redis that comes back without its last writes gets the grant month
// back from the ledger with the balances: a grant it lost the payment of
// is not paid twice.
func TestGrantMonthSurvivesRedisHeal(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC))
	key := e.createUserKey(t, `{"username":"ann","monthly_grant":10,"partner":true}`)
	res, err := e.Engine.Charge(e.ctx, key, 0, "GET /x") // loaded, nothing due
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status)
	e.Drain(t)
	snap := e.SnapshotRedis(t)

	e.Clock.Set(time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC))
	res, err = e.Engine.Charge(e.ctx, key, metering.Micro, "GET /x") // pays April
	require.NoError(t, err)
	require.Equal(t, 9*metering.Micro, res.Remaining)
	e.Drain(t)
	e.RestartRedisFrom(t, snap)

	e.requireGrant(t, "ann", "9", at(2026, 5, 1, 0, 0, 0), "healed from the ledger")
	res, err = e.Engine.Charge(e.ctx, key, metering.Micro, "GET /x")
	require.NoError(t, err)
	require.Equal(t, 8*metering.Micro, res.Remaining, "April is not paid again")
	e.Drain(t)
	e.AssertConsistent(t)
	_, total, _ := e.grantLedger(t, "ann")
	require.Equal(t, "10", total)
}
