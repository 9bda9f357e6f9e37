package floor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`bench_floor redis://127.0.0.1:6379/15 2`)))
	require.Equal(t, Handler{Redis: "redis://127.0.0.1:6379/15", RoundTrips: 2}, h)
	for _, bad := range []string{`bench_floor`, `bench_floor redis://h:1/0`, `bench_floor redis://h:1/0 0`,
		`bench_floor redis://h:1/0 two`, `bench_floor redis://h:1/0 1 extra`} {
		require.Error(t, new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)), bad)
	}
}

// Each request makes exactly RoundTrips EVALSHA calls, then reaches the
// next handler.
func TestRoundTripsPerRequest(t *testing.T) {
	srv := meteringtest.StartRedisServer(t)
	h := &Handler{Redis: "redis://" + srv.Addr() + "/0", RoundTrips: 3}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	require.NoError(t, h.Provision(ctx))
	defer h.Cleanup()

	reached := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { reached++; return nil })
	for i := 0; i < 4; i++ {
		require.NoError(t, h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/bench", nil), next))
	}
	require.Equal(t, 4, reached)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	require.Contains(t, stats, "cmdstat_evalsha:calls=12,")
	require.False(t, strings.Contains(stats, "cmdstat_get:"), "nothing but the scripts")
}
