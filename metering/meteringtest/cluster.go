package meteringtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// clusterWait bounds every wait on the cluster: start-up, a failover, a
// node's return. Generous, since a loaded 2-core machine running tests
// under -race slows gossip and replication; a healthy run takes seconds.
const clusterWait = 90 * time.Second

// RedisCluster is a test's private Redis Cluster: redis-server processes
// in cluster mode on free loopback ports, without persistence (each keeps
// its nodes.conf, so a killed node restarts with its identity and rejoins).
// The processes are killed when the test ends.
type RedisCluster struct {
	// Nodes are the cluster's servers in start order. Which are masters
	// changes with failovers: ask MasterOfSlot.
	Nodes []*RedisServer

	t   testing.TB
	tls *tls.Config             // how clients connect, nil without TLS
	ids map[*RedisServer]string // CLUSTER MYID, fixed by nodes.conf
	// promotable holds, per slot given to KillMaster, the node IDs of the
	// killed master's replicas: one of them must take the slot over.
	promotable map[int]map[string]bool
}

// StartRedisCluster starts masters*(1+replicasPerMaster) cluster-mode
// redis-servers, joins them with redis-cli --cluster create and waits until
// every node reports cluster_state:ok, all of them agree on who serves
// which of the 16384 slots, and every replica's link to its master is up.
func StartRedisCluster(t testing.TB, masters, replicasPerMaster int) *RedisCluster {
	t.Helper()
	return startCluster(t, masters, replicasPerMaster, nil)
}

// StartRedisClusterTLS is StartRedisCluster with TLS only, between the
// nodes too, each node serving a certificate from ca for 127.0.0.1 and
// localhost and demanding a client certificate from ca. TLSConfig is what
// a client connects with.
func StartRedisClusterTLS(t testing.TB, masters, replicasPerMaster int, ca *TestCA) *RedisCluster {
	t.Helper()
	return startCluster(t, masters, replicasPerMaster, ca)
}

// TLSConfig is the client TLS configuration the cluster's nodes accept
// (a client certificate from the cluster's CA), nil without TLS.
func (c *RedisCluster) TLSConfig() *tls.Config { return c.tls }

func startCluster(t testing.TB, masters, replicasPerMaster int, ca *TestCA) *RedisCluster {
	t.Helper()
	if masters < 3 {
		// redis-cli --cluster create refuses fewer than 3 masters.
		t.Fatalf("StartRedisCluster: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not on PATH: run make test, which installs Debian's redis-server (it brings redis-cli), or apt-get install redis-server", bin)
		}
	}
	began := time.Now()
	c := &RedisCluster{t: t, ids: map[*RedisServer]string{}, promotable: map[int]map[string]bool{}}
	dir := t.TempDir()
	var cliTLS []string // redis-cli's TLS arguments
	var certFile, keyFile string
	if ca != nil {
		certFile, keyFile = ca.Issue(t, "redis-cluster")
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.tls = ca.ClientTLS()
		c.tls.Certificates = []tls.Certificate{pair}
		cliTLS = []string{"--tls", "--cacert", ca.CertFile, "--cert", certFile, "--key", keyFile}
	}
	n := masters * (1 + replicasPerMaster)
	for i := range n {
		// The cluster bus listens on its own port, which is by default the
		// client port + 10000: past 65535 for a port from the ephemeral
		// range, so it gets a free port of its own. Diskless replication
		// without the default 5s delay makes a replica's first sync
		// immediate.
		args := []string{"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(FreePort(t)),
			"--repl-diskless-sync-delay", "0"}
		var s *RedisServer
		if ca == nil {
			s = StartRedisServer(t, args...)
		} else {
			// The node's certificate serves both ends of the cluster bus
			// and of replication.
			args = append(args, "--tls-cluster", "yes", "--tls-replication", "yes", "--tls-auth-clients", "yes")
			s = StartRedisServerTLS(t, c.tls, certFile, keyFile, ca.CertFile, args...)
		}
		c.Nodes = append(c.Nodes, s)
	}
	ctx := context.Background()
	for _, s := range c.Nodes {
		id, err := nodeCall(c.tls, s, func(r *redis.Client) (string, error) { return r.ClusterMyID(ctx).Result() })
		if err != nil {
			t.Fatalf("CLUSTER MYID on %s: %v\n%s", s.Addr(), err, s.Output())
		}
		c.ids[s] = id
	}
	processes := time.Since(began)

	args := append(append(cliTLS, "--cluster", "create"), c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	created := time.Since(began)

	c.waitUntil("the cluster to be ready", func() error {
		view, err := c.settled()
		if err != nil {
			return err
		}
		var serving, replicas int
		for _, v := range view {
			if v.master() && len(v.slots) > 0 {
				serving++
			} else if !v.master() {
				replicas++
			}
		}
		if serving != masters || replicas != masters*replicasPerMaster {
			return fmt.Errorf("%d masters serve slots and %d replicas, want %d and %d", serving, replicas, masters, masters*replicasPerMaster)
		}
		return nil
	})
	t.Logf("Redis Cluster of %d masters and %d replicas ready in %v (processes %v, redis-cli --cluster create %v)",
		masters, masters*replicasPerMaster, time.Since(began).Round(time.Millisecond),
		processes.Round(time.Millisecond), (created - processes).Round(time.Millisecond))
	return c
}

// Addrs are every node's host:port, to seed a cluster client with.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// NodeID is the node's cluster ID.
func (c *RedisCluster) NodeID(s *RedisServer) string { return c.ids[s] }

// Client is a cluster client seeded with every node, closed when t ends.
// It reloads the slot map every second: go-redis reloads it on a MOVED or
// ASK, but not when a master stops answering, and by default only every
// 60s otherwise, so after a failover a default client keeps dialling the
// dead master for its slots for up to a minute.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second, TLSConfig: c.tls})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterOfSlot is the node serving this slot, as a running node's CLUSTER
// SLOTS says.
func (c *RedisCluster) MasterOfSlot(slot int) *RedisServer {
	c.t.Helper()
	var errs []string
	for _, s := range c.running() {
		ranges, err := nodeCall(c.tls, s, func(r *redis.Client) ([]redis.ClusterSlot, error) {
			return r.ClusterSlots(context.Background()).Result()
		})
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.Addr(), err))
			continue
		}
		for _, rg := range ranges {
			if rg.Start <= slot && slot <= rg.End && len(rg.Nodes) > 0 {
				if m := c.byID(rg.Nodes[0].ID); m != nil {
					return m
				}
			}
		}
		errs = append(errs, fmt.Sprintf("%s: no known node serves slot %d", s.Addr(), slot))
	}
	c.t.Fatalf("no master for slot %d: %s\n%s", slot, strings.Join(errs, "; "), c.report())
	return nil
}

// KillMaster kills the node serving this slot (SIGKILL, as a crash would)
// and returns it. Its replicas are remembered for WaitForPromotion.
func (c *RedisCluster) KillMaster(slot int) *RedisServer {
	c.t.Helper()
	view, err := c.settled()
	if err != nil {
		c.t.Fatalf("KillMaster(%d) on a cluster that is not settled: %v\n%s", slot, err, c.report())
	}
	m := c.MasterOfSlot(slot)
	replicas := map[string]bool{}
	for id, v := range view {
		if v.masterID == c.ids[m] {
			replicas[id] = true
		}
	}
	if len(replicas) == 0 {
		c.t.Fatalf("the master of slot %d (%s) has no replica to promote\n%s", slot, m.Addr(), c.report())
	}
	c.promotable[slot] = replicas
	m.Kill()
	return m
}

// WaitForPromotion waits until one of the replicas of the master
// KillMaster(slot) killed serves the slot, every running node agrees and
// reports cluster_state:ok, and returns that new master.
func (c *RedisCluster) WaitForPromotion(slot int) *RedisServer {
	c.t.Helper()
	replicas, ok := c.promotable[slot]
	if !ok {
		c.t.Fatalf("WaitForPromotion(%d) without KillMaster(%d) first", slot, slot)
	}
	began := time.Now()
	var promoted string
	c.waitUntil(fmt.Sprintf("a replica of slot %d's killed master to serve it", slot), func() error {
		view, err := c.settled()
		if err != nil {
			return err
		}
		for id, v := range view {
			if v.serves(slot) {
				if !replicas[id] {
					return fmt.Errorf("slot %d is served by %s, not one of the killed master's replicas", slot, v.addr)
				}
				promoted = id
				return nil
			}
		}
		return fmt.Errorf("no node serves slot %d", slot)
	})
	c.t.Logf("slot %d failed over to %s in %v", slot, c.byID(promoted).Addr(), time.Since(began).Round(time.Millisecond))
	delete(c.promotable, slot)
	return c.byID(promoted)
}

// Restart starts a killed node again on its port with its nodes.conf (so
// with its node ID, and an empty dataset) and waits until the cluster has
// settled with it as a replica whose link to its master is up, which
// means its full sync is done.
func (c *RedisCluster) Restart(s *RedisServer) {
	c.t.Helper()
	began := time.Now()
	s.Start()
	c.waitUntil(fmt.Sprintf("%s to rejoin as a replica", s.Addr()), func() error {
		view, err := c.settled()
		if err != nil {
			return err
		}
		if v := view[c.ids[s]]; v.master() {
			return fmt.Errorf("%s is still a master (serving %d ranges)", s.Addr(), len(v.slots))
		}
		return nil
	})
	c.t.Logf("%s rejoined as a replica in %v", s.Addr(), time.Since(began).Round(time.Millisecond))
}

// WaitSettled waits until every running node agrees on the cluster and
// reports cluster_state:ok, and every replica among them is in sync.
func (c *RedisCluster) WaitSettled() {
	c.t.Helper()
	c.waitUntil("the cluster to settle", func() error { _, err := c.settled(); return err })
}

// nodeView is one node as CLUSTER NODES describes it.
type nodeView struct {
	id, addr string
	flags    []string
	masterID string   // "-" for a master
	slots    []string // ranges served ("0-5460", "5461"); migrations left out
}

func (v nodeView) has(flag string) bool {
	for _, f := range v.flags {
		if f == flag {
			return true
		}
	}
	return false
}

func (v nodeView) master() bool { return v.has("master") }

func (v nodeView) serves(slot int) bool {
	for _, r := range v.slots {
		lo, hi := parseSlotRange(r)
		if lo <= slot && slot <= hi {
			return true
		}
	}
	return false
}

// key is what every node must agree on about this one.
func (v nodeView) key() string {
	role := "replica of " + v.masterID
	if v.master() {
		role = "master"
	}
	return fmt.Sprintf("%s %s %s %s", v.id, v.addr, role, strings.Join(v.slots, ","))
}

func parseSlotRange(r string) (lo, hi int) {
	a, b, ok := strings.Cut(r, "-")
	lo, _ = strconv.Atoi(a)
	hi = lo
	if ok {
		hi, _ = strconv.Atoi(b)
	}
	return lo, hi
}

// parseClusterNodes reads CLUSTER NODES' output:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
func parseClusterNodes(out string) (map[string]nodeView, error) {
	views := map[string]nodeView{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q has fewer than 8 fields", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		v := nodeView{id: f[0], addr: addr, flags: strings.Split(f[2], ","), masterID: f[3]}
		for _, s := range f[8:] {
			if !strings.HasPrefix(s, "[") { // "[slot->-id]": a slot migrating, not served
				v.slots = append(v.slots, s)
			}
		}
		views[v.id] = v
	}
	return views, nil
}

// settled returns the cluster as every running node sees it, with an
// error unless: each running node reports cluster_state:ok with all 16384
// slots served, knows every node, flags no running node as failing or in
// a handshake, and sees the same roles, masters and slots for the running
// nodes as the others do; the killed nodes serve no slot; the running
// masters serve each slot once; and every running replica's link to its
// (running) master is up.
func (c *RedisCluster) settled() (map[string]nodeView, error) {
	ctx := context.Background()
	running := c.running()
	if len(running) == 0 {
		return nil, fmt.Errorf("no node is running")
	}
	up := map[string]bool{}
	for _, s := range running {
		up[c.ids[s]] = true
	}
	var agreed map[string]nodeView
	var agreedKey, agreedBy string
	for _, s := range running {
		info, err := nodeCall(c.tls, s, func(r *redis.Client) (string, error) { return r.ClusterInfo(ctx).Result() })
		if err != nil {
			return nil, fmt.Errorf("CLUSTER INFO on %s: %w", s.Addr(), err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_slots_ok:16384",
			"cluster_known_nodes:" + strconv.Itoa(len(c.Nodes))} {
			if !strings.Contains(info, want+"\r\n") {
				return nil, fmt.Errorf("%s does not report %s", s.Addr(), want)
			}
		}
		out, err := nodeCall(c.tls, s, func(r *redis.Client) (string, error) { return r.ClusterNodes(ctx).Result() })
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES on %s: %w", s.Addr(), err)
		}
		view, err := parseClusterNodes(out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Addr(), err)
		}
		var keys []string
		for _, n := range c.Nodes {
			id := c.ids[n]
			v, ok := view[id]
			switch {
			case !ok:
				return nil, fmt.Errorf("%s does not know node %s (%s)", s.Addr(), id, n.Addr())
			case !up[id]:
				if len(v.slots) > 0 {
					return nil, fmt.Errorf("%s sees the killed node %s still serving %s", s.Addr(), n.Addr(), strings.Join(v.slots, ","))
				}
				continue
			}
			for _, bad := range []string{"fail", "fail?", "handshake", "noaddr"} {
				if v.has(bad) {
					return nil, fmt.Errorf("%s flags %s as %s", s.Addr(), n.Addr(), strings.Join(v.flags, ","))
				}
			}
			keys = append(keys, v.key())
		}
		sort.Strings(keys)
		key := strings.Join(keys, "\n")
		if agreed == nil {
			agreed, agreedKey, agreedBy = view, key, s.Addr()
		} else if key != agreedKey {
			return nil, fmt.Errorf("%s and %s disagree about the cluster:\n%s\nversus\n%s", agreedBy, s.Addr(), agreedKey, key)
		}
	}
	var covered [clusterSlots]bool
	for _, v := range agreed {
		if !up[v.id] || !v.master() {
			continue
		}
		for _, r := range v.slots {
			lo, hi := parseSlotRange(r)
			for slot := lo; slot <= hi; slot++ {
				if covered[slot] {
					return nil, fmt.Errorf("slot %d is served twice", slot)
				}
				covered[slot] = true
			}
		}
	}
	for slot, ok := range covered {
		if !ok {
			return nil, fmt.Errorf("no running master serves slot %d", slot)
		}
	}
	for _, s := range running {
		v := agreed[c.ids[s]]
		if v.master() {
			continue
		}
		if !up[v.masterID] {
			return nil, fmt.Errorf("%s replicates the killed node %s", s.Addr(), v.masterID)
		}
		repl, err := nodeCall(c.tls, s, func(r *redis.Client) (string, error) { return r.Info(ctx, "replication").Result() })
		if err != nil {
			return nil, fmt.Errorf("INFO replication on %s: %w", s.Addr(), err)
		}
		if !strings.Contains(repl, "master_link_status:up\r\n") {
			return nil, fmt.Errorf("replica %s's link to its master is not up", s.Addr())
		}
	}
	return agreed, nil
}

// waitUntil polls cond until it returns nil, failing the test with cond's
// last error and each running node's view at the deadline.
func (c *RedisCluster) waitUntil(what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %s: %v\n%s", clusterWait, what, err, c.report())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// report is each node's view of the cluster, for failure messages.
func (c *RedisCluster) report() string {
	ctx := context.Background()
	var b strings.Builder
	for _, s := range c.Nodes {
		fmt.Fprintf(&b, "--- node %s (%s)", s.Addr(), c.ids[s])
		if s.cmd == nil {
			b.WriteString(": killed\n")
			continue
		}
		b.WriteString("\n")
		for _, cmd := range []func(*redis.Client) (string, error){
			func(r *redis.Client) (string, error) { return r.ClusterInfo(ctx).Result() },
			func(r *redis.Client) (string, error) { return r.ClusterNodes(ctx).Result() },
		} {
			out, err := nodeCall(c.tls, s, cmd)
			if err != nil {
				out = err.Error()
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "cluster_stats_") {
					b.WriteString("  " + line + "\n")
				}
			}
		}
		out := s.Output()
		if len(out) > 2000 {
			out = "…" + out[len(out)-2000:]
		}
		b.WriteString("  log tail:\n" + out + "\n")
	}
	return b.String()
}

// running are the nodes not killed.
func (c *RedisCluster) running() []*RedisServer {
	var up []*RedisServer
	for _, s := range c.Nodes {
		if s.cmd != nil {
			up = append(up, s)
		}
	}
	return up
}

func (c *RedisCluster) byID(id string) *RedisServer {
	for s, sid := range c.ids {
		if sid == id {
			return s
		}
	}
	return nil
}

// nodeCall runs f on a connection to this one node (not following the
// cluster's redirections), with a short timeout: the checks poll.
func nodeCall[T any](tlsConfig *tls.Config, s *RedisServer, f func(*redis.Client) (T, error)) (T, error) {
	r := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: tlsConfig, MaxRetries: -1, DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Second, PoolSize: 1})
	defer r.Close()
	return f(r)
}
