package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// redisGroup is a Redis master with one replica and three sentinels
// watching them, all private to the test.
type redisGroup struct {
	master, replica *meteringtest.RedisServer
	sentinels       []*meteringtest.RedisServer
	name            string
}

func startRedisGroup(t *testing.T) *redisGroup {
	g := &redisGroup{name: "tollgate-test"}
	g.master = meteringtest.StartRedisServer(t)
	g.replica = meteringtest.StartRedisServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(g.master.Port))
	// Quick failure detection keeps the test short; a production group
	// uses the defaults (docs/operations.md).
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 10000\n", g.name, g.master.Port)
	for i := 0; i < 3; i++ {
		g.sentinels = append(g.sentinels, meteringtest.StartSentinel(t, conf))
	}
	return g
}

// url is the gateway's `redis` URL for the group.
func (g *redisGroup) url() string {
	u := "redis+sentinel://" + g.sentinels[0].Addr() + "/0?master_name=" + g.name
	for _, s := range g.sentinels[1:] {
		u += "&addr=" + s.Addr()
	}
	return u
}

// masterPort is the master's port as the first sentinel names it.
func (g *redisGroup) masterPort(t *testing.T) int {
	c := redis.NewClient(&redis.Options{Addr: g.sentinels[0].Addr()})
	defer c.Close()
	addr, err := c.Do(context.Background(), "SENTINEL", "get-master-addr-by-name", g.name).StringSlice()
	require.NoError(t, err)
	port, err := strconv.Atoi(addr[1])
	require.NoError(t, err)
	return port
}

// awaitReplicated waits until the replica has everything the master wrote.
func (g *redisGroup) awaitReplicated(t *testing.T) {
	m := redis.NewClient(&redis.Options{Addr: g.master.Addr()})
	defer m.Close()
	r := redis.NewClient(&redis.Options{Addr: g.replica.Addr()})
	defer r.Close()
	offset := func(c *redis.Client, field string) string {
		info, err := c.Info(context.Background(), "replication").Result()
		require.NoError(t, err)
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				return v
			}
		}
		return ""
	}
	require.Eventually(t, func() bool {
		want := offset(m, "master_repl_offset")
		return want != "" && offset(r, "slave_repl_offset") == want
	}, 30*time.Second, 20*time.Millisecond, "the replica does not catch up")
}

// A gateway on a Sentinel URL keeps charging exactly across a failover:
// the master is killed, the sentinels promote the replica, the gateway's
// connections follow it, and its fence verifies the promoted server
// against the ledger before anything is charged there.
func TestGatewayFollowsSentinelFailover(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	group := startRedisGroup(t)
	ctx := context.Background()
	up := newUpstream(t)
	listen := freePort(t)
	config := globalOptions(t, b, group.url(), "sentinel-test") + fmt.Sprintf(`http://%s {
	metering {
		cost 1
		credit_leases off
	}
	reverse_proxy %s
}`, listen, up.Listener.Addr().String())
	startGateway(t, config)
	g := gateway{base: "http://" + listen, client: &http.Client{Timeout: 30 * time.Second}}

	// The test's own engine writes users through the same sentinels.
	admin := adminEngine(t, b, func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: group.name,
			SentinelAddrs: []string{group.sentinels[0].Addr(), group.sentinels[1].Addr(), group.sentinels[2].Addr()},
			OnConnect:     onConnect})
	})
	_, key, err := admin.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 30 * metering.Micro})
	require.NoError(t, err)

	charged := 0
	send := func() int {
		resp, _ := g.do(t, "GET", "/x", key)
		if resp.StatusCode == http.StatusOK {
			charged++
		}
		return resp.StatusCode
	}
	for i := 0; i < 10; i++ {
		require.Equal(t, http.StatusOK, send())
	}
	group.awaitReplicated(t)
	first := group.master.Port
	group.master.Kill()
	require.Eventually(t, func() bool { return group.masterPort(t) == group.replica.Port }, time.Minute,
		100*time.Millisecond, "the sentinels do not promote the replica")
	require.NotEqual(t, first, group.masterPort(t))

	// Requests during the switch may be refused as unavailable (503,
	// never charged); once the gateway reaches the promoted replica
	// every request is charged again, until the credits run out.
	require.Eventually(t, func() bool {
		code := send()
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, code)
		return code == http.StatusOK
	}, time.Minute, 50*time.Millisecond, "the gateway does not charge on the promoted replica")
	for code := send(); code == http.StatusOK; code = send() {
	}
	require.Equal(t, 30, charged, "exactly the credits the user had were spent")
	require.Equal(t, int64(30), up.hits.Load(), "only paid requests reached upstream")

	v, err := admin.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, metering.Credits(0), v.Live.Effective)
	// Every charge reaches the ledger once, through the gateway's
	// reconciler on the promoted replica.
	var usage int
	require.Eventually(t, func() bool {
		require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage'`).Scan(&usage))
		return usage >= charged
	}, time.Minute, 50*time.Millisecond, "usage events in the ledger: %d of %d", usage, charged)
	require.Equal(t, charged, usage)
}
