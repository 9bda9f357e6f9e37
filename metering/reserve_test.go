package metering_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// reserveWorld is a project with a daily allowance and a pool, and one
// member u holding some of every bucket.
func reserveWorld(t *testing.T) (*world, string) {
	t.Helper()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(10), Period: metering.PeriodDaily,
		PoolEnabled: true, PoolBalance: cr(100), PoolPerUserLimit: ptr(cr(10))})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p", InitialCredits: cr(10), Purchased: cr(10)})
	_, err := w.Engine.PutPrice(w.ctx, "test", metering.Price{Model: "m1",
		InputPerMillion: cr(1), OutputPerMillion: cr(2)})
	require.NoError(t, err)
	return w, key
}

func (w *world) reserve(t *testing.T, r metering.ReserveRequest) *metering.Reservation {
	t.Helper()
	if r.Request == "" {
		r.Request = "POST /v1/chat/completions"
	}
	res, err := w.Engine.Reserve(w.ctx, r)
	require.NoError(t, err)
	return res
}

func (w *world) settle(t *testing.T, r *metering.Reservation, o metering.Outcome) metering.SettleResult {
	t.Helper()
	res, err := w.Engine.Settle(w.ctx, r, o)
	require.NoError(t, err)
	return res
}

// tokens makes a usage of in input and out output tokens.
func tokens(in, out int64) metering.Units { return metering.Units{InputTokens: in, OutputTokens: out} }

func TestReserveSettleExact(t *testing.T) {
	t.Parallel()
	w, key := reserveWorld(t)
	// 1M input at 1 + 2M output at 2 = 5 credits.
	r := w.reserve(t, metering.ReserveRequest{Key: key, Model: "m1", Estimate: tokens(1_000_000, 2_000_000), Lease: time.Minute})
	require.Equal(t, metering.Reserved, r.Status)
	require.Equal(t, cr(5), r.Reserved)
	require.Equal(t, metering.Split{Allowance: cr(5)}, r.Taken)
	require.Equal(t, cr(35), r.Remaining)
	s := w.settle(t, r, metering.Outcome{Units: tokens(1_000_000, 2_000_000), Status: 200, Duration: 1500 * time.Millisecond})
	require.Equal(t, metering.SettleResult{Charged: cr(5), Remaining: cr(35)}, s)
	again := w.settle(t, r, metering.Outcome{Refund: true})
	require.Equal(t, metering.SettleResult{AlreadySettled: true}, again)
	require.Equal(t, cr(35), w.view(t, "u").Live.Effective)

	w.drainAndCheck(t)
	uid := w.view(t, "u").ID
	l := w.ledgerUsage(t, uid)
	require.Equal(t, ledgerUsage{events: 1, cost: int64(cr(5))}, l, "the usage event nets nothing: the hold took it all")
	var model string
	var in, out, reserved, status, dur int64
	require.NoError(t, w.DB.QueryRow(w.ctx, `SELECT model, input_units, output_units, reserved, upstream_status, duration_ms
		FROM events WHERE kind = 'usage'`).Scan(&model, &in, &out, &reserved, &status, &dur))
	require.Equal(t, []any{"m1", int64(1_000_000), int64(2_000_000), int64(cr(5)), int64(200), int64(1500)},
		[]any{model, in, out, reserved, status, dur})
	require.Empty(t, w.rollupMismatches(t))
	rows, err := w.Engine.Usage(w.ctx, metering.UsageQuery{From: metering.UTCDay(monday), To: metering.UTCDay(monday).AddDate(0, 0, 1),
		GroupBy: metering.GroupModel})
	require.NoError(t, err)
	require.Equal(t, []metering.UsageRow{{Model: "m1", Requests: 1, Credits: cr(5), Allowance: cr(5)}}, rows)
}
