package meteringtest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// RandomSeeds runs run in n parallel subtests named seed=<seed>, for
// randomized tests. The first seed is TOLLGATE_RANDOM_SEED when set (to
// run a failure again), else the clock; a failing subtest logs how to
// run it again.
func RandomSeeds(t *testing.T, n int, run func(t *testing.T, seed int64)) {
	base := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("TOLLGATE_RANDOM_SEED"), 10, 64); err == nil {
		base = s
	}
	for i := int64(0); i < int64(n); i++ {
		seed := base + i
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("reproduce with TOLLGATE_RANDOM_SEED=%d go test -run '%s' in this package", seed, t.Name())
				}
			})
			run(t, seed)
		})
	}
}

// NextPeriodStart is the first instant of the period after the one that
// contains now, for a period rule in loc: the next local midnight, Monday
// or 1st (the next 1st for PeriodNone, where monthly grants roll). Only
// for zones whose clock changes never skip midnight.
func NextPeriodStart(per metering.Period, loc *time.Location, now time.Time) time.Time {
	t := now.In(loc)
	y, m, d := t.Date()
	switch per {
	case metering.PeriodDaily:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case metering.PeriodWeekly:
		back := (int(t.Weekday()) + 6) % 7
		return time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
}
