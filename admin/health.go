package admin

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

func (a *api) healthRoutes() []route {
	return []route{
		{method: "GET", path: "/health", h: a.health, public: true},
	}
}

// healthJSON is the GET /health answer. reconcile_lag_seconds and
// dead_letters are null when Redis, which holds the backlog, cannot be read.
type healthJSON struct {
	Redis               string   `json:"redis"`
	Postgres            string   `json:"postgres"`
	Reconciler          string   `json:"reconciler"`
	ReconcileLagSeconds *float64 `json:"reconcile_lag_seconds"`
	DeadLetters         *int64   `json:"dead_letters"`
}

// health reports whether Redis and Postgres answer and the reconciler
// keeps up: 200 when all three are "ok", else 503 naming the failing part
// ("error: ..."). The reconciler fails when the oldest event not yet in
// Postgres is older than MaxReconcileLag (stalled, or far behind), and is
// "unknown" when Redis cannot be read. Dead letters are counted but do
// not fail the check: they are for an admin, and every gateway would
// report them alike. It needs no token, so load balancers can probe it.
func (a *api) health(w http.ResponseWriter, r *http.Request) error {
	h := a.engine.CheckHealth(r.Context(), a.cfg.HealthTimeout)
	out := healthJSON{Redis: healthState(h.Redis), Postgres: healthState(h.Postgres), Reconciler: "unknown"}
	reconcilerOK := false
	if h.Redis == nil {
		lag := math.Round(h.ReconcileLag.Seconds()*1000) / 1000 // milliseconds; not money
		out.ReconcileLagSeconds, out.DeadLetters = &lag, &h.DeadLetters
		reconcilerOK = h.ReconcileLag <= a.cfg.MaxReconcileLag
		out.Reconciler = "ok"
		if !reconcilerOK {
			out.Reconciler = fmt.Sprintf("error: oldest unreconciled event is %s old (limit %s)",
				seconds(h.ReconcileLag.Truncate(time.Millisecond)), seconds(a.cfg.MaxReconcileLag))
		}
	}
	status := http.StatusOK
	if !h.OK() || !reconcilerOK {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
	return nil
}

// seconds prints d as "75.25s" or "60s".
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }

func healthState(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}
