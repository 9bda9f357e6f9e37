package caddymodule_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A route with credit_leases on, through the real gateway: requests are
// admitted and charged exactly (the remaining balance counts down by the
// cost), the ledger gets one usage event each once the leases are back,
// and a deactivation through the admin API is effective on the very next
// request.
func TestCreditLeasedRoute(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	up := newUpstream(t).Listener.Addr().String()
	listen := freePort(t)
	config := gatewayConfig(t, b, listen, up, meteringtest.RedisURL())
	leased := strings.Replace(config, "\t\tmetering\n", "\t\tmetering {\n\t\t\tcredit_leases on\n\t\t}\n", 1)
	require.NotEqual(t, config, leased, "the gateway config has a bare metering directive")
	startGateway(t, leased)
	g := gateway{base: "http://" + listen, client: &http.Client{}}

	ann, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 50 * metering.Micro})
	require.NoError(t, err)
	for i := 1; i <= 30; i++ {
		resp, body := g.do(t, "POST", "/v1/chat/completions", key)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, strconv.Itoa(50-i), resp.Header.Get("X-Credits-Remaining"), "request %d", i)
	}
	resp, body := g.do(t, "POST", "/admin/v1/users/ann/deactivate", "admin-secret")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, _ = g.do(t, "POST", "/v1/chat/completions", key)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "refused on the first request after the admin call")

	b.Drain(t)
	var usage int
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage' AND user_id = $1`, ann.ID).Scan(&usage))
	require.Equal(t, 30, usage)
	v, err := b.Engine.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, 20*metering.Micro, v.Live.Effective, "the leases went back with the deactivation")
}
