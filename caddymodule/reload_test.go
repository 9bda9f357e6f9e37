package caddymodule_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfileFmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A configuration reload while a request is being served upstream: Caddy
// cleans up the old configuration at once, while its server still finishes
// the request. The old configuration's engine must stay open until then,
// so the request's in-flight lease is released by its handler (before the
// fix, the release met a closed engine and the user stayed "in flight"
// until the lease ran out, blocking its deletion), and it is charged once,
// by the configuration that admitted it.
func TestReloadLetsRequestsInFlightFinish(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	slow, arrived, finish := heldUpstream(t)
	listen := freePort(t)
	config := gatewayConfig(t, b, listen, slow.Listener.Addr().String(), meteringtest.RedisURL())
	tracked := strings.Replace(config, "\t\tmetering\n", "\t\tmetering {\n\t\t\tcredit_leases off\n\t\t}\n", 1)
	require.NotEqual(t, config, tracked, "the gateway config has a bare metering directive")
	startGateway(t, tracked)
	g := gateway{base: "http://" + listen, client: &http.Client{}}

	ann, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)
	inFlight := func() int {
		resp, body := g.do(t, "GET", "/admin/v1/users/ann", "admin-secret")
		require.Equal(t, 200, resp.StatusCode, body)
		var u struct {
			InFlight int `json:"in_flight"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &u))
		return u.InFlight
	}

	done := g.chatInBackground(key)
	<-arrived
	require.Equal(t, 1, inFlight())

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
