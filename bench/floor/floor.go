// Package floor is a benchmark-only Caddy handler, compiled into
// bin/tollgate-bench (bench/cmd/tollgate-bench) and never into the
// gateway: `bench_floor` makes a fixed number of Redis round trips per
// request, each one EVALSHA of a script that returns at once, and does
// nothing else. Beside the metered routes in the same `make bench` run it
// measures the floor of a design that talks to Redis per request: what a
// route costs that does no metering work at all but the round trips
// (docs/benchmarks.md, "The floor of a round trip").
package floor

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("bench_floor", parse)
	httpcaddyfile.RegisterDirectiveOrder("bench_floor", httpcaddyfile.Before, "reverse_proxy")
}

// empty is the script each round trip runs: it returns at once.
var empty = redis.NewScript("return 1")

// Handler makes RoundTrips Redis round trips, then calls the next handler.
type Handler struct {
	// Redis is the server's URL (placeholders allowed).
	Redis string `json:"redis"`
	// RoundTrips per request, at least 1.
	RoundTrips int `json:"round_trips"`

	rdb *redis.Client
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bench_floor", New: func() caddy.Module { return new(Handler) }}
}

// Provision connects with the same pool size as the metering stores.
func (h *Handler) Provision(caddy.Context) error {
	if h.RoundTrips < 1 {
		return fmt.Errorf("bench_floor: round_trips must be at least 1, not %d", h.RoundTrips)
	}
	opt, err := redis.ParseURL(caddy.NewReplacer().ReplaceAll(h.Redis, ""))
	if err != nil {
		return fmt.Errorf("bench_floor: redis URL: %w", err)
	}
	opt.PoolSize = 32
	h.rdb = redis.NewClient(opt)
	return empty.Load(context.Background(), h.rdb).Err()
}

// Cleanup closes the Redis client.
func (h *Handler) Cleanup() error {
	if h.rdb == nil {
		return nil
	}
	return h.rdb.Close()
}

// ServeHTTP makes the round trips, then hands the request on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	for i := 0; i < h.RoundTrips; i++ {
		if err := empty.EvalSha(r.Context(), h.rdb, []string{"{bench-floor}:u:1"}, 1, "bench").Err(); err != nil {
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		}
	}
	return next.ServeHTTP(w, r)
}

// parse reads `bench_floor <redis url> <round trips>`.
func parse(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var f Handler
	if err := f.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return &f, nil
}

// UnmarshalCaddyfile reads `bench_floor <redis url> <round trips>`.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.Args(&h.Redis) {
		return d.ArgErr()
	}
	var n string
	if !d.Args(&n) {
		return d.ArgErr()
	}
	var err error
	if h.RoundTrips, err = strconv.Atoi(n); err != nil || h.RoundTrips < 1 {
		return d.Errf("bench_floor: round trips %q: a positive integer", n)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
