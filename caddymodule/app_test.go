package caddymodule

import (
	"fmt"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/require"
)

// TestReconcileBatchBoundsInJSON: a JSON config is not read by the
// Caddyfile parser, so Provision checks reconcile_batch too, before it
// opens any connection.
func TestReconcileBatchBoundsInJSON(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-1, maxReconcileBatch + 1} {
		cfg := fmt.Sprintf(`{"admin": {"disabled": true}, "apps": {"metering": {"redis": "redis://127.0.0.1:1/0",
			"postgres": "postgres://127.0.0.1:1/none", "key_pepper": "p", "reconcile_batch": %d}}}`, n)
		var c caddy.Config
		require.NoError(t, caddy.StrictUnmarshalJSON([]byte(cfg), &c))
		err := caddy.Validate(&c)
		require.ErrorContains(t, err, fmt.Sprintf("reconcile_batch %d: must be an integer from 1 to 100000", n))
	}
}
