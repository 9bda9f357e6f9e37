package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkChargeLeased measures a fixed-cost charge served from a credit
// lease (ChargeLeased), serially and from 32 goroutines, for one user with
// a large balance (leases of 100 requests) and for 64 users. redis-µs/op is
// Redis's script CPU per charge (INFO commandstats: takes, flushes and ends,
// the leases ended before it is read), exact only against a Redis no other
// test uses:
//
//	TOLLGATE_TEST_REDIS_URL=redis://127.0.0.1:6391/0 go test ./metering/ -run '^$' -bench BenchmarkChargeLeased
func BenchmarkChargeLeased(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	ctx := context.Background()
	var keys []string
	for i := 0; i < 64; i++ {
		_, key, err := w.Engine.CreateUser(ctx, "bench", metering.UserSpec{Username: "u" + formatIndex(i),
			InitialCredits: metering.MaxCredits / 2})
		require.NoError(b, err)
		keys = append(keys, key)
	}
	w.Engine.StartLeases()
	require.Eventually(b, w.Engine.LeaseAliveForTest, 30*time.Second, 10*time.Millisecond)
	charge := func(key string) {
		res, err := w.Engine.ChargeLeased(ctx, key, metering.Micro, "GET /bench")
		if err != nil || res.Status != metering.Charged {
			b.Fatalf("charge: %+v %v", res, err)
		}
	}
	cpu := func(b *testing.B) func() {
		before := meteringtest.ReadScriptStats(b, w.Redis)
		return func() {
			b.StopTimer()
			w.Engine.EndLeases(ctx)
			d := meteringtest.ReadScriptStats(b, w.Redis).Sub(before)
			b.ReportMetric(float64(d.Usec)/float64(b.N), "redis-µs/op")
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		defer cpu(b)()
		for i := 0; i < b.N; i++ {
			charge(keys[0])
		}
	})
	b.Run("parallel_one_user", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		defer cpu(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				charge(keys[0])
			}
		})
	})
	b.Run("parallel_64_users", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		defer cpu(b)()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				charge(keys[i%len(keys)])
				i++
			}
		})
	})
}

func formatIndex(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }
