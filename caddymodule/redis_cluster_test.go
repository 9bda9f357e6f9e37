package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A gateway on a Redis Cluster of three masters, each with a replica,
// with its keys in twelve shards: the users of twelve projects spread
// over every master, and the gateway charges them exactly. Under load the
// master holding some of them is killed; its replica is promoted, the
// gateway's connections follow, and its fence heals the shards that
// master held from the ledger before charging there again. Requests meet
// 503 (never charged) meanwhile. At the end every user's credits are
// spent exactly once in the ledger; what the gateway admitted beyond that
// is what the asynchronous replication lost (charges acknowledged by the
// killed master that neither its replica nor the ledger had), reported.
func TestGatewayShardsAcrossRedisCluster(t *testing.T) {
	cl := meteringtest.StartRedisCluster(t, 3, 1)
	const shards, projects, usersPer, credits = 12, 12, 2, 25
	b := meteringtest.New(t, meteringtest.Options{RedisShards: shards})
	ctx := context.Background()
	up := newUpstream(t)
	listen := freePort(t)
	url := "redis+cluster://" + cl.Addrs()[0] + "?addr=" + strings.Join(cl.Addrs()[1:], "&addr=")
	startGateway(t, globalOptions(t, b, url, "cluster-test")+fmt.Sprintf(`http://%s {
	metering {
		cost 1
		credit_leases off
	}
	reverse_proxy %s
}`, listen, up.Listener.Addr().String()))
	admin := adminEngine(t, b, func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), OnConnect: onConnect,
			ClusterStateReloadInterval: time.Second})
	})

	// The shards' tags are spread over the three masters.
	keys := admin.Keys()
	masters := map[int]int{}
	for _, sh := range keys.Shards() {
		masters[cl.MasterOfSlot(metering.ClusterSlot(sh.Tag())).Port]++
	}
	require.Len(t, masters, 3, "every master holds shards: %v", masters)

	type user struct {
		name, key string
		shard     int
	}
	var users []user
	for p := 0; p < projects; p++ {
		proj, err := admin.CreateProject(ctx, "test", metering.ProjectSpec{Name: fmt.Sprintf("p%d", p)})
		require.NoError(t, err)
		for i := 0; i < usersPer; i++ {
			name := fmt.Sprintf("u%d-%d", p, i)
			_, key, err := admin.CreateUser(ctx, "test", metering.UserSpec{Username: name,
				Project: proj.Name, InitialCredits: credits * metering.Micro})
			require.NoError(t, err)
			users = append(users, user{name: name, key: key, shard: keys.ProjectShard(proj.ID).Index()})
		}
	}

	// Four workers each spend their users' credits until the gateway says
	// they have none left; the test kills a master meanwhile.
	client := &http.Client{Timeout: 30 * time.Second}
	send := func(key string) (int, error) {
		req, err := http.NewRequest("GET", "http://"+listen+"/x", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var charged, unavailable atomic.Int64
	deadline := time.Now().Add(3 * time.Minute)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(users); i += 4 {
				for {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("user %d of shard %d still not spent after 3 minutes", i, users[i].shard)
						return
					}
					code, err := send(users[i].key)
					if err != nil {
						errs <- err
						return
					}
					switch code {
					case http.StatusOK:
						charged.Add(1)
						continue
					case http.StatusServiceUnavailable:
						unavailable.Add(1)
						time.Sleep(20 * time.Millisecond)
						continue
					case http.StatusPaymentRequired:
					default:
						errs <- fmt.Errorf("user %d: status %d", i, code)
						return
					}
					break
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return charged.Load() >= 100 }, time.Minute, 10*time.Millisecond,
		"the gateway charges on the cluster")
	victim := metering.ClusterSlot(keys.Shard(0).Tag())
	t.Logf("killing the master of shard 0 after %d charges", charged.Load())
	killed := cl.KillMaster(victim)
	promoted := cl.WaitForPromotion(victim)
	t.Logf("killed master :%d; :%d promoted; %d charges by then", killed.Port, promoted.Port, charged.Load())
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Every user's credits reach the ledger exactly once: the heal set the
	// promoted master's shards to what the ledger held, and what was spent
	// after was recorded like the rest.
	total := int64(projects * usersPer * credits)
	var usage int64
	require.Eventually(t, func() bool {
		require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage'`).Scan(&usage))
		return usage >= total
	}, time.Minute, 50*time.Millisecond, "usage events in the ledger: %d of %d", usage, total)
	require.Equal(t, total, usage, "the ledger never records more than the users had")
	require.Equal(t, charged.Load(), up.hits.Load(), "only admitted requests reached upstream")
	lost := charged.Load() - usage
	require.GreaterOrEqual(t, lost, int64(0))
	t.Logf("%d requests admitted, %d refused as unavailable during the failover; %d charges lost with the killed master's unreplicated writes",
		charged.Load(), unavailable.Load(), lost)
	for _, u := range users {
		v, err := admin.GetUser(ctx, u.name)
		require.NoError(t, err)
		require.Zero(t, v.Live.Effective, "%s: Redis has nothing left", u.name)
		require.Zero(t, v.Awarded, "%s: nor has the ledger", u.name)
	}
}
