package metering

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// The pipelined script runner lives in internal/scriptrun (batching,
// EVALSHA with EVAL on NOSCRIPT, no go-redis retries, the fence check);
// these names keep the engine's code as it was.
type (
	scriptRunner = scriptrun.Runner
	scriptCall   = scriptrun.Call
	// luaScript is an embedded script: its hash and its source.
	luaScript = scriptrun.Script
)

func newScriptRunner(rdb redis.UniversalClient, timeout time.Duration) *scriptRunner {
	return scriptrun.New(rdb, timeout)
}

// getCall returns a pooled call to fill; putCall returns it after its answer was read.
func getCall(s *luaScript) *scriptCall { return scriptrun.Get(s) }

func putCall(c *scriptCall) { scriptrun.Put(c) }
