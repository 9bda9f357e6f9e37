package caddymodule

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/metering"
)

// Tollgate's Prometheus metrics (docs/metrics.md lists them all). They are
// registered in the registry Caddy gives each config
// (caddy.Context.GetMetricsRegistry), which Caddy serves on its admin
// endpoint's /metrics and through the `metrics` handler.
//
// A config reload provisions a new App in a new context with a new, empty
// registry, so every registration below happens once per config and the
// old registry goes away with the old config. The values themselves live
// in package-level state that outlives reloads, so counters do not restart
// when the config changes: engineMetrics (what the engines count) and the
// handlers' counter vectors. Only the scrape-time figures (lag, backlog,
// dead letters, up) belong to the config's App, whose stores they read.

// engineMetrics is what every engine of this process counts (the
// handlers' engines of each config, the reconciler's and sweeper's).
var engineMetrics = metering.NewMetrics()

// registerMetrics registers Tollgate's collectors in the config's registry.
// Registering a collector a registry already holds is not an error: it
// is the same collector.
func (a *App) registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return errors.New("metering: Caddy gave no metrics registry")
	}
	a.requests = requestMetricsFor(a.MetricsPerProject)
	for _, c := range []prometheus.Collector{a.requests.requests, a.requests.charged,
		engineCollector{engineMetrics}, &storesCollector{engine: a.engine}} {
		if err := reg.Register(c); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				continue
			}
			return fmt.Errorf("metering: registering metrics: %w", err)
		}
	}
	return nil
}
