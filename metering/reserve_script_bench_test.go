package metering_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkReserveScript measures Redis's CPU per reservation of
// reserve.lua, and of an empty script with the same keys and arguments
// (the floor of one EVALSHA), the scripts alone (no Engine), on a user
// with a project reserving from its allowance, as most reservations do.
// They alternate in rounds so a machine whose load drifts skews neither.
// The reservation's record is deleted after each call (a DEL, which the
// script counters do not count) so each call reserves anew. Exact only
// against a Redis no other test uses:
//
//	TOLLGATE_TEST_REDIS_URL=redis://127.0.0.1:6391/0 go test ./metering/ -run '^$' -bench ReserveScript -count 3
func BenchmarkReserveScript(b *testing.B) {
	rdb := meteringtest.Redis(b)
	ctx := context.Background()
	empty := redis.NewScript("return {0, 0, 0, 0, 0, 0}")
	type run func(metering.ReserveArgs) ([]int64, error)
	scripts := []struct {
		unit string
		run  run
		w    *scriptWorld
		usec int64
		n    int
	}{
		{unit: "reserve-µs/call", run: func(a metering.ReserveArgs) ([]int64, error) {
			res, _, err := metering.RunReserve(ctx, rdb, a)
			return res, err
		}},
		{unit: "empty-µs/call", run: func(a metering.ReserveArgs) ([]int64, error) {
			return empty.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, a.EventsKey, a.FlightKey, a.RecordKey,
				a.LeasesKey, a.PriceVersionKey}, a.KeyHash, a.UserVersion, a.ProjectVersion, a.NowMs,
				a.AllowanceStart, a.Month, int64(a.Amount), a.EventID, a.Request, a.UserID, a.DeadlineMs, a.Order,
				a.PriceVersion, a.Model, a.AllowanceEndMs).Int64Slice()
		}},
	}
	for i := range scripts {
		w := newScriptWorld(b, rdb)
		w.put(baseUser("a", strconv.FormatInt(1<<50, 10)), baseProject("pe", "1", "pb", "1000"))
		require.NoError(b, rdb.Set(ctx, w.keys.PriceVersion(), "3", 0).Err())
		scripts[i].w = w
		_, err := scripts[i].run(w.benchReserve()) // loads the script
		require.NoError(b, err)
		require.NoError(b, rdb.Del(ctx, w.keys.Reservation("evt1")).Err())
	}
	b.ResetTimer()
	const round = 500
	for done := 0; done < b.N; done += round {
		for i := range scripts {
			s := &scripts[i]
			a := s.w.benchReserve()
			before := meteringtest.ReadScriptStats(b, rdb)
			for j := 0; j < round && done+j < b.N; j++ {
				if res, err := s.run(a); err != nil || res[0] != metering.ScriptOK {
					b.Fatalf("%v %v", res, err)
				}
				if err := rdb.Del(ctx, a.RecordKey).Err(); err != nil {
					b.Fatal(err)
				}
				s.n++
			}
			s.usec += meteringtest.ReadScriptStats(b, rdb).Sub(before).Usec
		}
	}
	b.StopTimer()
	for _, s := range scripts {
		b.ReportMetric(float64(s.usec)/float64(s.n), s.unit)
	}
}

// benchReserve is a reservation of 1 from the allowance, with a price
// version to check, as a priced route's are.
func (w *scriptWorld) benchReserve() metering.ReserveArgs {
	a := w.reserveArgs(1, 1000, "apwr")
	a.PriceVersion = "3"
	return a
}
