package caddymodule_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// heldUpstream is an upstream that holds each request until finish is
// closed; arrived hears each request as it comes in.
func heldUpstream(t *testing.T) (srv *httptest.Server, arrived chan struct{}, finish chan struct{}) {
	arrived, finish = make(chan struct{}, 1), make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-finish
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-finish:
		default:
			close(finish)
		}
	})
	return srv, arrived, finish
}

// chatInBackground sends a chat completion with key and hands back its
// status (-1 when it got no answer) once it is done.
func (g gateway) chatInBackground(key string) <-chan int {
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.base+"/v1/chat/completions", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := g.client.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	return done
}

// A user cannot be deleted while one of its requests is still being
// served upstream; once the response is done it can, and its usage stays.
func TestDeleteDuringInFlightRequest(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	slow, arrived, finish := heldUpstream(t)
	listen := freePort(t)
	// Tracked charges (credit leases off): the request counts as in flight.
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
	resp, body := g.do(t, "DELETE", "/admin/v1/users/ann", "admin-secret")
	require.Equal(t, http.StatusConflict, resp.StatusCode, body)
	require.Contains(t, body, `"code":"conflict"`)

	close(finish)
	require.Equal(t, 200, <-done)
	// The release is queued after the response, not awaited by it.
	require.Eventually(t, func() bool { return inFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	resp, body = g.do(t, "DELETE", "/admin/v1/users/ann", "admin-secret")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, body)

	resp, _ = g.do(t, "POST", "/v1/chat/completions", key)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a deleted user's key fails like any invalid key")
	resp, _ = g.do(t, "GET", "/admin/v1/users/ann", "admin-secret")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	b.Drain(t)
	var usage int
	require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage' AND username = 'ann'`).Scan(&usage))
	require.Equal(t, 1, usage, "usage history outlives the user")
	n, err := b.Redis.Exists(ctx, b.Engine.Keys().InFlight(ann.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "no in-flight set left behind")
}
