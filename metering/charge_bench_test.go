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
	b.Run("serial_tracked", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tracked()
		}
	})
	b.Run("parallel_tracked", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tracked()
			}
		})
	})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			charge()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				charge()
			}
		})
	})
}

// BenchmarkReserveSettle measures a variable-cost request's two script
// calls (reserve with a priced estimate, settle with the actual usage),
// to compare with BenchmarkCharge's one.
func BenchmarkReserveSettle(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	_, err := w.Engine.CreateProject(ctx, "bench", metering.ProjectSpec{Name: "p", AllowanceAmount: 10 * metering.Micro,
		Period: metering.PeriodDaily, PoolEnabled: true, PoolBalance: 10 * metering.Micro})
	require.NoError(b, err)
	_, key, err := w.Engine.CreateUser(ctx, "bench", metering.UserSpec{Username: "u", Project: "p", InitialCredits: metering.MaxCredits / 2})
	require.NoError(b, err)
	_, err = w.Engine.PutPrice(ctx, "bench", metering.Price{Model: "m", InputPerMillion: 1, OutputPerMillion: 2})
	require.NoError(b, err)
	req := metering.ReserveRequest{Key: key, Model: "m", Estimate: metering.Units{InputTokens: 1000, OutputTokens: 4096},
		Request: "POST /v1/chat/completions", Lease: time.Minute}
	one := func() {
		r, err := w.Engine.Reserve(ctx, req)
		if err != nil || r.Status != metering.Reserved {
			b.Fatalf("reserve: %+v %v", r, err)
		}
		if _, err := w.Engine.Settle(ctx, r, metering.Outcome{Units: metering.Units{InputTokens: 1000, OutputTokens: 300}, Status: 200}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			one()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	})
}
