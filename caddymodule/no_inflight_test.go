package caddymodule_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// With in_flight_lease off a fixed-cost charge is final at admission:
// nothing counts as in flight, the user can be deleted while its request
// is served upstream, and the request still completes, charged once.
func TestDeleteDuringUntrackedRequest(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	slow, arrived, finish := heldUpstream(t)
	listen := freePort(t)
	config := gatewayConfig(t, b, listen, slow.Listener.Addr().String(), meteringtest.RedisURL())
	untracked := strings.Replace(config, "\t\tmetering\n", "\t\tmetering {\n\t\t\tin_flight_lease off\n\t\t}\n", 1)
	require.NotEqual(t, config, untracked, "the gateway config has a bare metering directive")
	startGateway(t, untracked)
	g := gateway{base: "http://" + listen, client: &http.Client{}}

	ann, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)

	done := g.chatInBackground(key)
	<-arrived

	resp, body := g.do(t, "GET", "/admin/v1/users/ann", "admin-secret")
	require.Equal(t, 200, resp.StatusCode, body)
	var u struct {
		InFlight int `json:"in_flight"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &u))
	require.Zero(t, u.InFlight, "an untracked charge is not in flight")
	resp, body = g.do(t, "DELETE", "/admin/v1/users/ann", "admin-secret")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, body)

	close(finish)
	require.Equal(t, 200, <-done, "the request admitted before the delete completes")
	resp, _ = g.do(t, "POST", "/v1/chat/completions", key)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	b.Drain(t)
	var usage int
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage' AND username = 'ann'`).Scan(&usage))
	require.Equal(t, 1, usage, "charged once, at admission")
	n, err := b.Redis.Exists(ctx, b.Engine.Keys().ShardOf(ann.ProjectID, ann.ID).InFlight(ann.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "nothing was recorded in flight")
}
