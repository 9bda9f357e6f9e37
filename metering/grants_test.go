package metering_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// A user hash written before grants depended on the partner flag has no
// 'pt' field: the scripts ask for the user to be loaded again, which adds
// it, even where Redis holds a newer config version than Postgres (Redis
// cannot hold a newer value of a field it never had). The partner's grant
// is then paid as usual; nothing is paid to a user who is not a partner.
func TestPartnerFlagReachesOlderRedisHashes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, utc(2026, 3, 10, 12, 0, 0))
	partnerKey := w.user(t, metering.UserSpec{Username: "p", MonthlyGrant: cr(10), Partner: true})
	otherKey := w.user(t, metering.UserSpec{Username: "o", MonthlyGrant: cr(10), Purchased: cr(1)})
	pid, oid := w.view(t, "p").ID, w.view(t, "o").ID
	require.NoError(t, w.Redis.HDel(w.ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, pid), pid).User(pid), "pt").Err())
	require.NoError(t, w.Redis.HDel(w.ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, oid), oid).User(oid), "pt").Err())
	require.NoError(t, w.Redis.HIncrBy(w.ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, oid), oid).User(oid), "v", 1).Err())

	w.Clock.Set(utc(2026, 4, 2, 0, 0, 0))
	require.Equal(t, cr(10), w.view(t, "p").Live.Purchased)
	require.Equal(t, cr(9), w.charge(t, partnerKey, cr(1)).Remaining)
	require.Equal(t, metering.Credits(0), w.charge(t, otherKey, cr(1)).Remaining, "no grant for a user who is not a partner")
	for id, want := range map[int64]string{pid: "1", oid: "0"} {
		pt, err := w.Redis.HGet(w.ctx, w.Engine.Keys().ShardOf(userProject(t, w.DB, id), id).User(id), "pt").Result()
		require.NoError(t, err)
		require.Equal(t, want, pt)
	}
	w.drainAndCheck(t)
}
