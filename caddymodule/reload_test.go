package caddymodule_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfileFmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// A configuration reload while a request is being served upstream: Caddy
// cleans up the old configuration at once, while its server still finishes
// the request. The old configuration's engine must stay open until then,
// so the request's in-flight lease is released by its handler (before the
// fix, the release met a closed engine and the user stayed "in flight"
// until the lease ran out, blocking its deletion), and it is charged once,
// by the configuration that admitted it.
func TestReloadLetsRequestsInFlightFinish(t *testing.T) {
	h := startHeldRequest(t)
	b, g, tracked, ann, key, finish, done := h.b, h.g, h.tracked, h.ann, h.key, h.finish, h.done
	ctx := context.Background()
	inFlight := func() int { return g.inFlight(t, "ann") }

	// The route now costs 2: a change, so the reload provisions new
	// module instances and cleans up the old ones.
	dearer := strings.Replace(tracked, "\t\tmetering {", "\t\tmetering 2 {", 1)
	require.NotEqual(t, tracked, dearer)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfileFmt.Format([]byte(dearer)), nil)
	require.NoError(t, err)
	require.NoError(t, caddy.Load(cfg, false))

	close(finish)
	require.Equal(t, 200, <-done, "the request in flight across the reload is answered")
	require.Eventually(t, func() bool { return inFlight() == 0 }, 10*time.Second, 5*time.Millisecond,
		"the old configuration's handler released its request")

	resp, body := g.do(t, "GET", "/x", key)
	require.Equal(t, 200, resp.StatusCode, body)
	b.Drain(t)
	rows, err := b.DB.Query(ctx, `SELECT cost FROM events WHERE kind = 'usage' AND user_id = $1 ORDER BY occurred_at, event_id`, ann.ID)
	require.NoError(t, err)
	costs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{int64(metering.Micro), 2 * int64(metering.Micro)}, costs,
		"each request charged once, at the cost of the configuration that admitted it")
}
