package caddymodule

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Every engine counter is exported, once: a counter added to metering
// without a name here would count unseen.
func TestEveryEngineCounterIsExported(t *testing.T) {
	t.Parallel()
	seen := map[metering.CounterID]bool{}
	for _, ec := range engineCounters {
		require.False(t, seen[ec.id], "counter %d exported twice", ec.id)
		seen[ec.id] = true
	}
	require.Len(t, seen, int(metering.NumCounters))
}
