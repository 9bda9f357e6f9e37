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

// startTrackedGateway starts a gateway whose route charges tracked
// (credit leases off), so a request counts as in flight while it is
// served; it returns the gateway and its Caddyfile.
func startTrackedGateway(t *testing.T, b *meteringtest.Bundle, upstreamAddr string) (gateway, string) {
	t.Helper()
	listen := freePort(t)
	config := gatewayConfig(t, b, listen, upstreamAddr, meteringtest.RedisURL())
	tracked := strings.Replace(config, "\t\tmetering\n", "\t\tmetering {\n\t\t\tcredit_leases off\n\t\t}\n", 1)
	require.NotEqual(t, config, tracked, "the gateway config has a bare metering directive")
	startGateway(t, tracked)
	return gateway{base: "http://" + listen, client: &http.Client{}}, tracked
}

// inFlight reads a user's in_flight count through the admin API.
func (g gateway) inFlight(t *testing.T, username string) int {
	t.Helper()
	resp, body := g.do(t, "GET", "/admin/v1/users/"+username, "admin-secret")
	require.Equal(t, 200, resp.StatusCode, body)
	var u struct {
		InFlight int `json:"in_flight"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &u))
	return u.InFlight
}

// heldRequest is a tracked gateway serving one request of user ann (10
// credits) that its upstream holds until finish is closed; done hands
// back its status.
type heldRequest struct {
	b       *meteringtest.Bundle
	g       gateway
	tracked string // the gateway's Caddyfile
	ann     metering.UserView
	key     string
	finish  chan struct{}
	done    <-chan int
}

// startHeldRequest sets up a heldRequest, its request counted in flight.
func startHeldRequest(t *testing.T) heldRequest {
	t.Helper()
	h := heldRequest{b: meteringtest.New(t, meteringtest.Options{})}
	slow, arrived, finish := heldUpstream(t)
	h.finish = finish
	h.g, h.tracked = startTrackedGateway(t, h.b, slow.Listener.Addr().String())
	var err error
	h.ann, h.key, err = h.b.Engine.CreateUser(context.Background(), "test",
		metering.UserSpec{Username: "ann", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)
	h.done = h.g.chatInBackground(h.key)
	<-arrived
	require.Equal(t, 1, h.g.inFlight(t, "ann"))
	return h
}

// A user cannot be deleted while one of its requests is still being
// served upstream; once the response is done it can, and its usage stays.
func TestDeleteDuringInFlightRequest(t *testing.T) {
	h := startHeldRequest(t)
	b, g, ann, key, finish, done := h.b, h.g, h.ann, h.key, h.finish, h.done
	ctx := context.Background()
	inFlight := func() int { return g.inFlight(t, "ann") }

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
	n, err := b.Redis.Exists(ctx, b.Engine.Keys().ShardOf(ann.ProjectID, ann.ID).InFlight(ann.ID)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "no in-flight set left behind")
}
