package metering_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// A key missing from the Redis key index (Redis lost it) is found by the
// index sync its first request triggers, and that request is charged: the
// key must not be refused, nor cached as unknown, on the way.
func TestKeyFoundBySyncOnFirstRequest(t *testing.T) {
	t.Parallel()
	w := newWorld(t, monday)
	w.project(t, metering.ProjectSpec{Name: "p", AllowanceAmount: cr(10), Period: metering.PeriodDaily})
	key := w.user(t, metering.UserSpec{Username: "u", Project: "p"})
	tag := "{" + w.Prefix + "}"
	require.NoError(t, w.Redis.Del(w.ctx, tag+":keys", tag+":keys:synced").Err())

	gw := w.NewEngine(t) // a gateway that has not cached the key
	res, err := gw.Charge(w.ctx, key, cr(1), "GET /test")
	require.NoError(t, err)
	require.Equal(t, metering.Charged, res.Status, "the key is live in Postgres")
	require.Equal(t, cr(9), res.Remaining)
}
