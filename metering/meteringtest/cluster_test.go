package meteringtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestRedisCluster runs a 3-master, 3-replica cluster through a master's
// crash: the data written before it (and replicated, as WAIT confirms) is
// still there once its replica took over, the same client writes again,
// and the crashed node comes back as a replica.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c := StartRedisCluster(t, 3, 1)
	require.Len(t, c.Nodes, 6)
	cc := c.Client(t)

	// Keys spread over the slots, so over the three masters.
	const keys = 300
	slotOf := map[string]int{}
	for i := range keys {
		k := fmt.Sprintf("key:%d", i)
		require.NoError(t, cc.Set(ctx, k, i, 0).Err())
		slot, err := cc.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		slotOf[k] = int(slot)
	}
	for i := range keys {
		v, err := cc.Get(ctx, fmt.Sprintf("key:%d", i)).Int()
		require.NoError(t, err)
		require.Equal(t, i, v)
	}

	// Each master serves about a third of the slots and holds some keys.
	ranges, err := cc.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	served := map[string]int{}
	for _, r := range ranges {
		served[r.Nodes[0].ID] += r.End - r.Start + 1
	}
	require.Len(t, served, 3, "three masters serve slots")
	for id, n := range served {
		require.InDelta(t, clusterSlots/3, n, clusterSlots/100, "master %s serves %d slots", id, n)
	}
	var total atomic.Int64 // ForEachMaster runs fn on the masters concurrently
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if err == nil && n == 0 {
			err = fmt.Errorf("master %s holds none of the %d keys", m.Options().Addr, keys)
		}
		total.Add(n)
		return err
	}))
	require.EqualValues(t, keys, total.Load(), "the masters hold the keys once")

	// The victim: key:0's slot. WAIT 1 on its master makes sure its
	// replica has key:0 before the crash.
	victimKey := "key:0"
	slot := slotOf[victimKey]
	old := c.MasterOfSlot(slot)
	direct := redis.NewClient(&redis.Options{Addr: old.Addr()})
	require.NoError(t, direct.Set(ctx, victimKey, "before the crash", 0).Err())
	acked, err := direct.Wait(ctx, 1, 0).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, acked, "WAIT 1 0: the replica acknowledged the write")
	require.NoError(t, direct.Close())

	killed := c.KillMaster(slot)
	require.Same(t, old, killed)
	promoted := c.WaitForPromotion(slot)
	require.NotSame(t, killed, promoted)
	require.Same(t, promoted, c.MasterOfSlot(slot))
	require.Equal(t, "master", nodeRole(t, promoted))

	// The same client finds the new master. It learns the new slot map
	// from a MOVED or its periodic refresh, and its first tries may still
	// go to the dead node, so it is given time; what must hold is that it
	// gets there, with the value written before the crash.
	var v string
	attempts := eventually(t, "the client to read "+victimKey+" from the new master", func() error {
		var err error
		v, err = cc.Get(ctx, victimKey).Result()
		return err
	})
	require.Equal(t, "before the crash", v)
	t.Logf("the client read %s after the failover at attempt %d", victimKey, attempts)
	eventually(t, "writes through the client", func() error { return cc.Set(ctx, victimKey, "after the crash", 0).Err() })
	for i := 1; i < keys; i++ { // the other masters' keys and the victim slot's
		k := fmt.Sprintf("key:%d", i)
		require.NoError(t, cc.Incr(ctx, k).Err(), k)
		n, err := cc.Get(ctx, k).Int()
		require.NoError(t, err)
		require.Equal(t, i+1, n, k)
	}
	got, err := cc.Get(ctx, victimKey).Result()
	require.NoError(t, err)
	require.Equal(t, "after the crash", got)

	// The killed node restarts with its nodes.conf, as a replica of the
	// node that took its slots, and resyncs (it starts empty: no
	// persistence), so it holds the victim key's latest value.
	c.Restart(killed)
	require.Equal(t, "slave", nodeRole(t, killed))
	r := redis.NewClient(&redis.Options{Addr: killed.Addr(), PoolSize: 1})
	defer r.Close()
	masterPort, err := r.Info(ctx, "replication").Result()
	require.NoError(t, err)
	require.Contains(t, masterPort, fmt.Sprintf("master_port:%d\r\n", promoted.Port))
	conn := r.Conn()
	defer conn.Close()
	require.NoError(t, conn.ReadOnly(ctx).Err()) // a replica answers for its master's slots only after READONLY
	replicated, err := conn.Get(ctx, victimKey).Result()
	require.NoError(t, err)
	require.Equal(t, "after the crash", replicated)
}

// nodeRole is the first element of ROLE on this node: master or slave.
func nodeRole(t *testing.T, s *RedisServer) string {
	r := redis.NewClient(&redis.Options{Addr: s.Addr(), PoolSize: 1})
	defer r.Close()
	role, err := r.Do(context.Background(), "ROLE").Slice()
	require.NoError(t, err)
	return role[0].(string)
}

// eventually calls f until it succeeds, failing the test with its last
// error after a generous deadline, and says at which attempt it did.
func eventually(t *testing.T, what string, f func() error) int {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return attempt
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", clusterWait, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
