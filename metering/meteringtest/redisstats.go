package meteringtest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ScriptStats is Redis's own account of the scripts it ran (INFO
// commandstats, EVALSHA and EVAL together): calls and CPU microseconds,
// the body of each script included.
type ScriptStats struct {
	Calls int64
	Usec  int64
}

// ReadScriptStats reads the server's script counters. They count every
// client of the server: measure against a Redis nobody else uses
// (TOLLGATE_TEST_REDIS_URL), or the figures include their scripts too.
func ReadScriptStats(t testing.TB, rdb redis.UniversalClient) ScriptStats {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	var s ScriptStats
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				continue // usec_per_call is a decimal; the totals are not
			}
			switch k {
			case "calls":
				s.Calls += n
			case "usec":
				s.Usec += n
			}
		}
	}
	return s
}

// Sub is the scripts run between two readings.
func (s ScriptStats) Sub(before ScriptStats) ScriptStats {
	return ScriptStats{Calls: s.Calls - before.Calls, Usec: s.Usec - before.Usec}
}
