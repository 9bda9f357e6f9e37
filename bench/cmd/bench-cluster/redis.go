package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering"
)

// runFreePorts prints N distinct free TCP ports on 127.0.0.1, one a line:
// all N listeners are open at once, so the ports differ.
func runFreePorts(args []string) error {
	if len(args) != 1 {
		return errors.New("free-ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 64 {
		return fmt.Errorf("free-ports: N must be 1 to 64, not %q", args[0])
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// waitDeadline bounds every wait: start-up of a redis-server or a cluster
// on a loaded 2-core machine takes seconds; a minute means it failed.
const waitDeadline = 60 * time.Second

// runWaitRedis waits until every address answers PING; with -cluster, also
// until every node reports cluster_state:ok and sees all 16384 slots
// served by the same masters as the others.
func runWaitRedis(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait-redis", flag.ContinueOnError)
	cluster := fs.Bool("cluster", false, "wait for a Redis Cluster to be ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addrs := fs.Args()
	if len(addrs) == 0 {
		return errors.New("wait-redis: no address")
	}
	ctx, cancel := context.WithTimeout(ctx, waitDeadline)
	defer cancel()
	var last error
	for {
		if last = redisReady(ctx, addrs, *cluster); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis at %s not ready within %v: %v", strings.Join(addrs, " "), waitDeadline, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func redisReady(ctx context.Context, addrs []string, cluster bool) error {
	view := ""
	for _, a := range addrs {
		err := withNode(a, func(r *redis.Client) error {
			if err := r.Ping(ctx).Err(); err != nil {
				return err
			}
			if !cluster {
				return nil
			}
			info, err := r.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster_state is not ok")
			}
			slots, err := r.ClusterSlots(ctx).Result()
			if err != nil {
				return err
			}
			covered, v := 0, ""
			for _, s := range slots {
				covered += s.End - s.Start + 1
				if len(s.Nodes) > 0 {
					v += fmt.Sprintf("%d-%d:%s ", s.Start, s.End, s.Nodes[0].ID)
				}
			}
			if covered != 16384 {
				return fmt.Errorf("sees %d slots served, not 16384", covered)
			}
			if view == "" {
				view = v
			} else if v != view {
				return errors.New("the nodes do not agree on who serves which slots yet")
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
	}
	return nil
}

func withNode(addr string, f func(*redis.Client) error) error {
	r := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	defer r.Close()
	return f(r)
}

// masterStats is one master's counters at a snapshot.
type masterStats struct {
	Addr string
	// CPUSeconds is used_cpu_user + used_cpu_sys (INFO cpu): the whole
	// server process, commands, networking and cron alike.
	CPUSeconds float64
	// Evalsha: cmdstat_evalsha calls and usec (INFO commandstats), the
	// time inside the scripts; AllUsec is every command's usec.
	EvalshaCalls, EvalshaUsec, AllUsec int64
	// Charges is how many usage events the ledger holds for the projects
	// whose shard this master serves.
	Charges int64
}

// snapshot is every master's counters at one moment.
type snapshot struct {
	Taken   time.Time
	Masters []masterStats
}

// runSnapshot waits until the ledger stops growing (the reconciler caught
// up), optionally resets each master's command statistics (CONFIG
// RESETSTAT: not the CPU counters, which are the process's), then reads
// each master's counters and the ledger's usage events per master.
func runSnapshot(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	masters := fs.String("masters", "", "comma-separated host:port of every master")
	pgURL := fs.String("postgres", "", "the gateway's PostgreSQL URL")
	shards := fs.Int("shards", 12, "the gateway's redis_shards")
	prefix := fs.String("prefix", "tollgate", "the gateway's redis_prefix")
	cluster := fs.Bool("cluster", false, "the masters form a Redis Cluster")
	reset := fs.Bool("reset", false, "CONFIG RESETSTAT on every master first")
	out := fs.String("out", "", "file to write the snapshot to (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addrs := strings.Split(*masters, ",")
	if *masters == "" || *pgURL == "" || *out == "" {
		return errors.New("snapshot needs -masters, -postgres and -out")
	}
	if !*cluster && len(addrs) != 1 {
		return errors.New("snapshot: several masters need -cluster")
	}
	keys, err := metering.NewRedisKeys(*prefix, *shards)
	if err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, *pgURL)
	if err != nil {
		return err
	}
	defer db.Close(ctx)

	perProject, err := settledCharges(ctx, db)
	if err != nil {
		return err
	}
	snap := snapshot{Taken: time.Now().UTC()}
	index := map[string]int{}
	for _, a := range addrs {
		m := masterStats{Addr: a}
		err := withNode(a, func(r *redis.Client) error {
			if *reset {
				if err := r.ConfigResetStat(ctx).Err(); err != nil {
					return err
				}
			}
			return readInfo(ctx, r, &m)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
		index[a] = len(snap.Masters)
		snap.Masters = append(snap.Masters, m)
	}

	// Which master serves each project's shard.
	var cc *redis.ClusterClient
	if *cluster {
		cc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		defer cc.Close()
	}
	for pid, n := range perProject {
		addr := addrs[0]
		if cc != nil {
			c, err := cc.MasterForKey(ctx, keys.ProjectShard(pid).Tag())
			if err != nil {
				return fmt.Errorf("the master of project %d's shard: %w", pid, err)
			}
			addr = c.Options().Addr
		}
		i, ok := index[addr]
		if !ok {
			return fmt.Errorf("project %d's shard is on %s, which is not among -masters %s", pid, addr, *masters)
		}
		snap.Masters[i].Charges += n
	}
	b, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// settledCharges waits until the ledger's count of usage events has not
// changed for a second (the reconciler, which runs every 200 ms, has
// recorded everything the scripts appended) and returns it per project.
func settledCharges(ctx context.Context, db *pgx.Conn) (map[int64]int64, error) {
	deadline := time.Now().Add(waitDeadline)
	prev, stableSince := int64(-1), time.Now()
	for {
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage'`).Scan(&n); err != nil {
			return nil, err
		}
		if n != prev {
			prev, stableSince = n, time.Now()
		} else if time.Since(stableSince) >= time.Second {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the ledger's usage events kept changing for %v (last count %d): is the reconciler stuck?", waitDeadline, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rows, err := db.Query(ctx, `SELECT coalesce(project_id, 0), count(*) FROM events WHERE kind = 'usage' GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	out := map[int64]int64{}
	for rows.Next() {
		var pid, n int64
		if err := rows.Scan(&pid, &n); err != nil {
			return nil, err
		}
		if pid == 0 {
			return nil, fmt.Errorf("%d usage events of users in no project: the benchmark's users are all in projects", n)
		}
		out[pid] = n
	}
	return out, rows.Err()
}

// readInfo reads INFO cpu and INFO commandstats into m.
func readInfo(ctx context.Context, r *redis.Client, m *masterStats) error {
	info, err := r.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return err
	}
	return parseInfo(info, m)
}

// parseInfo reads the CPU and command counters of an INFO answer into m.
func parseInfo(info string, m *masterStats) error {
	var err error
	var user, sys float64
	var haveCPU int
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_user":
			user, err = strconv.ParseFloat(val, 64)
			haveCPU++
		case name == "used_cpu_sys":
			sys, err = strconv.ParseFloat(val, 64)
			haveCPU++
		case strings.HasPrefix(name, "cmdstat_"):
			// calls=N,usec=N,usec_per_call=…,rejected_calls=…
			var calls, usec int64
			for _, kv := range strings.Split(val, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					calls, err = strconv.ParseInt(v, 10, 64)
				case "usec":
					usec, err = strconv.ParseInt(v, 10, 64)
				}
				if err != nil {
					return fmt.Errorf("INFO line %q: %w", line, err)
				}
			}
			m.AllUsec += usec
			if name == "cmdstat_evalsha" {
				m.EvalshaCalls, m.EvalshaUsec = calls, usec
			}
		}
		if err != nil {
			return fmt.Errorf("INFO line %q: %w", line, err)
		}
	}
	if haveCPU != 2 {
		return errors.New("INFO cpu gave no used_cpu_user and used_cpu_sys")
	}
	m.CPUSeconds = user + sys
	return nil
}
