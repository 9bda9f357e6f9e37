package metering_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"math/rand"
	"time"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// The model of variable cost (reserve → settle), beside random_test.go's
// model of charges: the same waterfall through a route's buckets, and
// settle.lua's rules for giving back or taking more.

// mRes is an open reservation in the model.
type mRes struct {
	real     *metering.Reservation
	user     *mUser
	order    string // bucket letters a p w r
	taken    map[byte]metering.Credits
	ap       int64 // the allowance period it drew from
	aend     int64 // Unix ms that period ends; 0 none
	reserved metering.Credits
}

var letterBucket = map[byte]metering.Bucket{'a': metering.BucketAllowance, 'p': metering.BucketPool,
	'w': metering.BucketAwarded, 'r': metering.BucketPurchased}

// randomOrder is a random non-empty selection of buckets in random order.
func randomOrder(rng *rand.Rand) (string, metering.BucketOrder) {
	if rng.Intn(3) == 0 {
		return "apwr", nil
	}
	letters := []byte("apwr")
	rng.Shuffle(len(letters), func(i, j int) { letters[i], letters[j] = letters[j], letters[i] })
	letters = letters[:1+rng.Intn(4)]
	var o metering.BucketOrder
	for _, l := range letters {
		o = append(o, letterBucket[l])
	}
	return string(letters), o
}

// reserve is charge through the buckets of order; the model keeps the hold.
func (u *mUser) reserve(now time.Time, cost metering.Credits, order string) (*mRes, metering.Reservation) {
	l := u.live(now)
	avail := map[byte]metering.Credits{'a': l.a, 'p': l.poolAvail, 'w': u.aw, 'r': l.pr}
	var reach metering.Credits
	for i := range order {
		reach += avail[order[i]]
	}
	if cost > reach {
		return nil, metering.Reservation{Status: metering.Insufficient, Remaining: reach}
	}
	rest := cost
	taken := map[byte]metering.Credits{}
	for i := range order {
		n := min(rest, avail[order[i]])
		taken[order[i]], rest = n, rest-n
	}
	u.a, u.ap, u.pu, u.gm = l.a-taken['a'], l.ap, l.pu+taken['p'], l.gm
	u.aw -= taken['w']
	u.pr = l.pr - taken['r']
	if taken['p'] > 0 {
		u.proj.pb -= taken['p']
	}
	m := &mRes{user: u, order: order, taken: taken, ap: u.ap, reserved: cost}
	if p := u.proj; p != nil && p.per != metering.PeriodNone {
		m.aend = meteringtest.NextPeriodStart(p.per, p.loc, now).UnixMilli()
	}
	return m, metering.Reservation{Status: metering.Reserved, Reserved: cost, Remaining: reach - cost,
		Taken: metering.Split{Allowance: taken['a'], Pool: taken['p'], Awarded: taken['w'], Purchased: taken['r']}}
}

// settle applies settle.lua's rules to the stored balances (no refill).
func (m *mRes) settle(now time.Time, cost metering.Credits) metering.SettleResult {
	u, p := m.user, m.user.proj
	same := u.ap == m.ap && (m.aend == 0 || now.UnixMilli() < m.aend)
	var out metering.SettleResult
	if cost < m.reserved {
		left := m.reserved - cost
		for i := len(m.order) - 1; i >= 0; i-- {
			b := m.order[i]
			n := min(m.taken[b], left)
			left -= n
			switch {
			case n == 0:
			case b == 'a' && !same:
				out.Forfeited += n
			case b == 'a':
				u.a += n
			case b == 'p':
				p.pb += n
				if same {
					u.pu -= min(n, u.pu)
				}
			case b == 'w':
				u.aw += n
			case b == 'r':
				u.pr += n
			}
			if n > 0 && !(b == 'a' && !same) {
				out.Refunded += n
			}
		}
	} else if cost > m.reserved {
		rest := cost - m.reserved
		for i := range m.order {
			var avail metering.Credits
			switch m.order[i] {
			case 'a':
				if same {
					avail = u.a
				}
			case 'p':
				if same && p != nil && p.poolOn {
					avail = max(0, p.pb)
					if p.limit >= 0 {
						avail = max(0, min(avail, p.limit-u.pu))
					}
				}
			case 'w':
				avail = u.aw
			case 'r':
				avail = u.pr
			}
			n := min(rest, avail)
			rest -= n
			out.Overrun += n
			switch m.order[i] {
			case 'a':
				u.a -= n
			case 'p':
				if n > 0 {
					p.pb -= n
					u.pu += n
				}
			case 'w':
				u.aw -= n
			case 'r':
				u.pr -= n
			}
		}
		out.Shortfall = rest
	}
	out.Charged = cost - out.Shortfall
	for i := range m.order {
		switch m.order[i] {
		case 'a':
			if same {
				out.Remaining += u.a
			}
		case 'p':
			if same && p != nil && p.poolOn {
				avail := p.pb
				if p.limit >= 0 {
					avail = min(avail, p.limit-u.pu)
				}
				out.Remaining += max(0, avail)
			}
		case 'w':
			out.Remaining += u.aw
		case 'r':
			out.Remaining += u.pr
		}
	}
	return out
}

// randomReserveSettle reserves for a random user through random buckets,
// or settles a random open reservation, and compares with the model.
func (w *world) randomReserveSettle(t *testing.T, rng *rand.Rand, engines []*metering.Engine, users []*mUser, open *[]*mRes) string {
	t.Helper()
	if len(*open) > 0 && rng.Intn(2) == 0 {
		return w.settleOne(t, rng, engines, open, rng.Intn(len(*open)))
	}
	u := users[rng.Intn(len(users))]
	est := metering.Credits(rng.Int63n(int64(cr(6))))
	letters, order := randomOrder(rng)
	eng := rng.Intn(len(engines))
	what := fmt.Sprintf("reserve %s %s through %q via engine %d", u.name, est, letters, eng)
	got, err := engines[eng].Reserve(w.ctx, metering.ReserveRequest{Key: u.key, Fixed: ptr(est), Buckets: order,
		Request: "POST /v1/chat/completions", Lease: 10000 * time.Hour})
	require.NoError(t, err, what)
	m, want := u.reserve(w.Clock.Now(), est, letters)
	require.Equal(t, want.Status, got.Status, what)
	require.Equal(t, want.Remaining, got.Remaining, what)
	if m != nil {
		require.Equal(t, want.Taken, got.Taken, what)
		require.Equal(t, want.Reserved, got.Reserved, what)
		m.real = got
		*open = append(*open, m)
	}
	return what
}

// settleOne settles (*open)[i] at a random cost around its estimate.
func (w *world) settleOne(t *testing.T, rng *rand.Rand, engines []*metering.Engine, open *[]*mRes, i int) string {
	t.Helper()
	m := (*open)[i]
	*open = append((*open)[:i], (*open)[i+1:]...)
	var cost metering.Credits
	switch rng.Intn(4) {
	case 0:
		cost = m.reserved
	case 1:
		cost = metering.Credits(rng.Int63n(int64(m.reserved) + 1))
	case 2:
		cost = m.reserved + metering.Credits(rng.Int63n(int64(cr(8))))
	}
	what := fmt.Sprintf("settle %s's %s at %s", m.user.name, m.reserved, cost)
	got, err := engines[rng.Intn(len(engines))].Settle(w.ctx, m.real, metering.Outcome{Cost: ptr(cost), Status: 200})
	require.NoError(t, err, what)
	require.Equal(t, m.settle(w.Clock.Now(), cost), got, what)
	return what
}
