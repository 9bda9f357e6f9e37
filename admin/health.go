package admin

import (
	"math"
	"net/http"
)

func (a *api) healthRoutes() []route {
	return []route{
		{method: "GET", path: "/health", h: a.health, public: true},
	}
}

// healthJSON is the GET /health answer. reconcile_lag_seconds is null when
// Redis, which holds the backlog, cannot be read.
type healthJSON struct {
	Redis               string   `json:"redis"`
	Postgres            string   `json:"postgres"`
	ReconcileLagSeconds *float64 `json:"reconcile_lag_seconds"`
}

// health reports whether Redis and Postgres answer, and how far the
// reconciler is behind: 200 when both answer, else 503 naming the failing
// part ("error: ..."). It needs no token, so load balancers can probe it.
func (a *api) health(w http.ResponseWriter, r *http.Request) error {
	h := a.engine.CheckHealth(r.Context(), a.cfg.HealthTimeout)
	out := healthJSON{Redis: healthState(h.Redis), Postgres: healthState(h.Postgres)}
	if h.Redis == nil {
		lag := math.Round(h.ReconcileLag.Seconds()*1000) / 1000 // milliseconds; not money
		out.ReconcileLagSeconds = &lag
	}
	status := http.StatusOK
	if !h.OK() {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
	return nil
}

func healthState(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}
