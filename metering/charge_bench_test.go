package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkCharge measures one fixed-cost charge through the engine
// (key check, HMAC, cache, one pipelined EVALSHA), serially and in parallel.
// redis-µs/op is Redis's CPU per operation by INFO commandstats (scripts
// only, releases included); exact only against a Redis no other test uses:
//
//	TOLLGATE_TEST_REDIS_URL=redis://127.0.0.1:6391/0 go test ./metering/ -run '^$' -bench BenchmarkCharge
func BenchmarkCharge(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	_, err := w.Engine.CreateProject(ctx, "bench", metering.ProjectSpec{Name: "p", AllowanceAmount: 10 * metering.Micro,
		Period: metering.PeriodDaily, PoolEnabled: true, PoolBalance: 10 * metering.Micro})
	require.NoError(b, err)
	_, key, err := w.Engine.CreateUser(ctx, "bench", metering.UserSpec{Username: "u", Project: "p", InitialCredits: metering.MaxCredits / 2})
	require.NoError(b, err)
	charge := func() {
		res, err := w.Engine.Charge(ctx, key, 1, "GET /bench")
		if err != nil || res.Status != metering.Charged {
			b.Fatalf("charge: %+v %v", res, err)
		}
	}
	// tracked: as the gateway handler charges, with an in-flight lease
	// and its release queued after the "response".
	tracked := func() {
		res, err := w.Engine.ChargeTracked(ctx, key, 1, "GET /bench", time.Minute)
		if err != nil || res.Status != metering.Charged {
			b.Fatalf("charge: %+v %v", res, err)
		}
		w.Engine.Release(res.Lease)
	}
	for _, v := range []struct {
		suffix string
		op     func()
	}{{"", charge}, {"_tracked", tracked}} {
		b.Run("serial"+v.suffix, func(b *testing.B) {
			b.ReportAllocs()
			defer reportRedisCPU(b, w)()
			for i := 0; i < b.N; i++ {
				v.op()
			}
		})
		b.Run("parallel"+v.suffix, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32)
			defer reportRedisCPU(b, w)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v.op()
				}
			})
		})
	}
}

// reportRedisCPU starts counting Redis's script CPU; the function it
// returns reports it per operation. Releases are detached: it waits for
// them, so a tracked charge's release counts too.
func reportRedisCPU(b *testing.B, w *meteringtest.Bundle) func() {
	before := meteringtest.ReadScriptStats(b, w.Redis)
	return func() {
		b.StopTimer()
		if err := w.Engine.WaitForRepairs(context.Background()); err != nil {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the flusher's last detached release
		d := meteringtest.ReadScriptStats(b, w.Redis).Sub(before)
		b.ReportMetric(float64(d.Usec)/float64(b.N), "redis-µs/op")
	}
}
