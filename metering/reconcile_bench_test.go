package metering_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkReconcile measures events per second from the Redis stream into
// the Postgres ledger, idempotency check and balance updates included.
// 1,000 users in 10 projects; each op is one event, one entry each, shaped
// like the charge script's.
func BenchmarkReconcile(b *testing.B) { benchReconcile(b, 1) }

// BenchmarkReconcilePacked is BenchmarkReconcile with the stream shaped
// like credit leases' flushes (lease_flush.lua): packed entries of 200
// usage events of one user each, their cost without bucket amounts (the
// lease's take and end move the balances).
func BenchmarkReconcilePacked(b *testing.B) { benchReconcile(b, 200) }

func benchReconcile(b *testing.B, perEntry int) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	const users, projects = 1000, 10
	uids := make([]int64, users)
	for p := 0; p < projects; p++ {
		_, err := w.Engine.CreateProject(ctx, "bench", metering.ProjectSpec{Name: fmt.Sprintf("p%d", p), PoolEnabled: true})
		require.NoError(b, err)
	}
	for i := range uids {
		v, _, err := w.Engine.CreateUser(ctx, "bench", metering.UserSpec{Username: fmt.Sprintf("u%d", i), Project: fmt.Sprintf("p%d", i%projects)})
		require.NoError(b, err)
		uids[i] = v.ID
	}
	w.Drain(b)
	stream := w.Engine.Keys().Shard(0).Events()
	single := func(p redis.Pipeliner, i int) {
		u := i % users
		p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{
			"id", fmt.Sprintf("bench-%d-%d", b.N, i), "k", "usage", "t", time.Now().UnixMilli(),
			"u", uids[u], "un", fmt.Sprintf("u%d", u), "p", u%projects + 1, "pn", fmt.Sprintf("p%d", u%projects),
			"c", 1000000, "a", 0, "pl", -600000, "pu", 600000, "aw", -400000, "pr", 0, "rq", "POST /v1/chat/completions"}})
	}
	// packed appends events i.. (perEntry of them, fewer at the end of n) as one entry.
	packed := func(p redis.Pipeliner, i, n int) {
		u := (i / perEntry) % users
		uses := make([]metering.LeaseUse, 0, perEntry)
		for j := i; j < min(i+perEntry, n); j++ {
			uses = append(uses, metering.LeaseUse{EventID: fmt.Sprintf("bench-%d-%d", b.N, j), AtMs: time.Now().UnixMilli(),
				Cost: 1000000, Request: "POST /v1/chat/completions"})
		}
		p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"k", "usage", "u", uids[u], "un", fmt.Sprintf("u%d", u),
			"p", u%projects + 1, "pn", fmt.Sprintf("p%d", u%projects), "n", len(uses), "ev", metering.PackUsesForTest(uses...)}})
	}
	fill := func(n int) {
		chunk := 5000 * perEntry
		for done := 0; done < n; done += chunk {
			_, err := w.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := done; i < min(done+chunk, n); i += perEntry {
					if perEntry == 1 {
						single(p, i)
					} else {
						packed(p, i, n)
					}
				}
				return nil
			})
			require.NoError(b, err)
		}
	}
	r, err := w.Engine.NewReconciler(metering.ReconcilerConfig{Consumer: "bench", Block: time.Millisecond})
	require.NoError(b, err)
	fill(b.N)
	b.ResetTimer()
	start, cpu, pgCPU := time.Now(), processCPU(b), backendsCPU(b, w.DB)
	total, longest := 0, time.Duration(0)
	for total < b.N {
		round := time.Now()
		n, err := r.RunOnce(ctx)
		require.NoError(b, err)
		total += n
		longest = max(longest, time.Since(round))
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
	// The reconcile lag at a steady rate the reconciler keeps up with is
	// about Interval plus one round; a round here is a full batch.
	b.ReportMetric(float64(longest.Milliseconds()), "max-round-ms")
	// The wall-clock rate swings with whatever else runs on the machine;
	// the reconciler's own CPU per event (Go: reading, decoding, encoding
	// for Postgres) moves much less, so it tells code changes apart.
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(total), "go-cpu-µs/event")
	var pgUsed time.Duration
	for pid, after := range backendsCPU(b, w.DB) {
		pgUsed += after - pgCPU[pid] // a backend opened since counts whole
	}
	b.ReportMetric(float64(pgUsed.Microseconds())/float64(total), "pg-cpu-µs/event")
}

// backendsCPU is the CPU time used so far by each Postgres backend behind
// the pool's connections, read from /proc (Postgres runs on this machine
// in tests), in clock ticks of 10 ms.
func backendsCPU(b *testing.B, db *pgxpool.Pool) map[int32]time.Duration {
	ctx := context.Background()
	conns := db.AcquireAllIdle(ctx)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	out := map[int32]time.Duration{}
	for _, c := range conns {
		pid := c.Conn().PgConn().PID()
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		require.NoError(b, err, "Postgres must run on this machine for its CPU to be measured")
		// Fields after the command name (which may hold spaces): state is
		// the 3rd field, utime and stime the 14th and 15th.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		utime, err := strconv.ParseInt(f[11], 10, 64)
		require.NoError(b, err)
		stime, err := strconv.ParseInt(f[12], 10, 64)
		require.NoError(b, err)
		out[int32(pid)] = time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return out
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
