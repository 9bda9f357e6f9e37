package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfileFmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// metricsGateway is a gateway with Caddy's admin endpoint on (its
// /metrics) and a `metrics` handler on the site, three metered routes: a
// tracked fixed charge, a cost_header reservation and the default credit
// leases. extra goes into the metering global option.
func metricsGatewayConfig(t *testing.T, b *meteringtest.Bundle, redisURL, adminAddr, listen, upstreamAddr, extra string) string {
	return fmt.Sprintf(`{
	admin %s
	metering {
		redis %s
		postgres "%s"
		key_pepper test-pepper
		redis_prefix %s
		reconciler_consumer metrics
		credit_lease_idle 200ms
		%s
	}
}
http://%s {
	handle /metrics {
		metrics
	}
	handle /tracked/* {
		metering {
			credit_leases off
		}
		reverse_proxy %s
	}
	handle /priced/* {
		metering 2 {
			cost_header X-Cost
		}
		reverse_proxy %s
	}
	handle {
		metering
		reverse_proxy %s
	}
}`, adminAddr, redisURL, dbURLWithSchema(t, b.Schema), b.Prefix, extra, listen, upstreamAddr, upstreamAddr, upstreamAddr)
}

// loadCaddyfile replaces this process's running Caddy config: the first
// call starts it, later ones are reloads.
func loadCaddyfile(t *testing.T, caddyfile string) {
	t.Helper()
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfileFmt.Format([]byte(caddyfile)), nil)
	require.NoError(t, err)
	require.Empty(t, warn)
	require.NoError(t, caddy.Load(cfg, true))
}

// TestMetricsEndToEnd runs a gateway, sends requests of each outcome,
// and checks what /metrics reports: the counts, the credits by bucket
// against the ledger, that a reload keeps counting without a duplicate
// registration, and that every metric the dashboard and the alert rules
// name is exported.
func TestMetricsEndToEnd(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	// The upstream says each request cost half a credit (cost_header).
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Cost", "0.5")
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(up.Close)
	adminAddr, listen := freePort(t), freePort(t)
	config := func(extra string) string {
		return metricsGatewayConfig(t, b, meteringtest.RedisURL(), adminAddr, listen, up.Listener.Addr().String(), extra)
	}
	startGateway(t, config(""))
	g := gateway{base: "http://" + listen, client: http.DefaultClient}
	adminMetrics := "http://" + adminAddr + "/metrics"

	// ann draws from every bucket: 3 of allowance, 2 of pool, 2 awarded
	// and 2 purchased, one credit per request on the tracked route.
	_, err := b.Engine.CreateProject(ctx, "test", metering.ProjectSpec{Name: "school", AllowanceAmount: 3 * metering.Micro,
		Period: "daily", PoolEnabled: true, PoolBalance: 2 * metering.Micro})
	require.NoError(t, err)
	_, ann, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", Project: "school",
		InitialCredits: 2 * metering.Micro, Purchased: 2 * metering.Micro})
	require.NoError(t, err)
	_, bob, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "bob", InitialCredits: 1000 * metering.Micro})
	require.NoError(t, err)
	_, carol, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "carol", InitialCredits: 10 * metering.Micro})
	require.NoError(t, err)

	// Counters are process-wide (they outlive reloads), so earlier tests
	// may have counted: each check is on the difference.
	before := scrapeMetrics(t, adminMetrics)
	status := map[int]int{}
	for range 12 { // 9 paid, 3 refused for want of credits
		resp, _ := g.do(t, "GET", "/tracked/x", ann)
		status[resp.StatusCode]++
	}
	require.Equal(t, map[int]int{200: 9, 402: 3}, status)
	unknown, _ := metering.NewAPIKey()
	for _, k := range []string{"", "garbage", unknown} {
		resp, _ := g.do(t, "GET", "/tracked/x", k)
		require.Equal(t, 401, resp.StatusCode)
	}
	after := scrapeMetrics(t, adminMetrics)
	delta := func(series string) float64 { return after.get(series) - before.get(series) }
	require.Equal(t, 9.0, delta(`tollgate_requests_total{outcome="charged"}`))
	require.Equal(t, 3.0, delta(`tollgate_requests_total{outcome="insufficient"}`))
	require.Equal(t, 3.0, delta(`tollgate_requests_total{outcome="invalid_key"}`))
	require.Zero(t, delta(`tollgate_requests_total{outcome="unavailable"}`))
	require.GreaterOrEqual(t, delta(`tollgate_redis_script_duration_seconds_count{script="tracked_charge"}`), 12.0)
	require.GreaterOrEqual(t, delta(`tollgate_redis_pipeline_calls_count`), 1.0)
	require.Equal(t, "histogram", after.types["tollgate_redis_script_duration_seconds"])

	t.Run("credits by bucket are what the ledger charged", func(t *testing.T) {
		b.Drain(t)
		var ledger [4]int64
		require.NoError(t, b.DB.QueryRow(ctx, `SELECT coalesce(-sum(d_allowance), 0), coalesce(-sum(d_pool), 0),
			coalesce(-sum(d_awarded), 0), coalesce(-sum(d_purchased), 0) FROM events WHERE kind = 'usage' AND username = 'ann'`).
			Scan(&ledger[0], &ledger[1], &ledger[2], &ledger[3]))
		require.Equal(t, [4]int64{3e6, 2e6, 2e6, 2e6}, ledger, "the ledger's charges, by bucket")
		for i, bucket := range []string{"allowance", "pool", "awarded", "purchased"} {
			require.Equal(t, float64(ledger[i]), delta(`tollgate_charged_microcredits_total{bucket="`+bucket+`"}`), bucket)
		}
	})

	t.Run("scrape-time figures read the stores", func(t *testing.T) {
		require.Equal(t, 1.0, after.get("tollgate_redis_up"))
		require.Equal(t, 1.0, after.get("tollgate_postgres_up"))
		require.Zero(t, after.get("tollgate_dead_letters"))
		for _, name := range []string{"tollgate_reconcile_lag_seconds", "tollgate_stream_backlog_events"} {
			require.True(t, after.has(name), name)
		}
		// Drained: nothing waits for the ledger now.
		drained := scrapeMetrics(t, adminMetrics)
		require.Zero(t, drained.get("tollgate_stream_backlog_events"))
		require.Zero(t, drained.get("tollgate_reconcile_lag_seconds"))
	})

	t.Run("reservations, refunds and credit leases", func(t *testing.T) {
		before := scrapeMetrics(t, adminMetrics)
		for range 3 { // 2 reserved, 0.5 charged, 1.5 refunded each
			resp, body := g.do(t, "GET", "/priced/x", carol)
			require.Equal(t, 200, resp.StatusCode, body)
		}
		var now scrape
		d := func(series string) float64 { return now.get(series) - before.get(series) }
		// A gateway admits from leases once its first heartbeat is in
		// (a second or so after it starts); until then each request takes
		// a lease of its own cost, charged at once. So requests go until
		// one is admitted from a lease.
		leased := 0
		for deadline := time.Now().Add(30 * time.Second); d("tollgate_credit_lease_admissions_total") == 0; leased++ {
			require.True(t, time.Now().Before(deadline), "no request was admitted from a credit lease")
			resp, body := g.do(t, "GET", "/leased/x", bob)
			require.Equal(t, 200, resp.StatusCode, body)
			time.Sleep(10 * time.Millisecond)
			now = scrapeMetrics(t, adminMetrics)
		}
		// Settlements and lease ends run behind the responses: awaited.
		settledAndEnded := func() bool {
			return d("tollgate_reservations_settled_total") == 3 && d("tollgate_credit_leases_taken_total") >= 1 &&
				d("tollgate_credit_leases_ended_total") == d("tollgate_credit_leases_taken_total")
		}
		deadline := time.Now().Add(30 * time.Second)
		for now = scrapeMetrics(t, adminMetrics); !settledAndEnded() && time.Now().Before(deadline); now = scrapeMetrics(t, adminMetrics) {
			time.Sleep(50 * time.Millisecond)
		}
		require.True(t, settledAndEnded(), "reservations settled %v of 3; leases taken %v, ended %v",
			d("tollgate_reservations_settled_total"), d("tollgate_credit_leases_taken_total"), d("tollgate_credit_leases_ended_total"))
		require.Equal(t, float64(3+leased), d(`tollgate_requests_total{outcome="charged"}`))
		require.Equal(t, 3.0, d("tollgate_reservations_opened_total"))
		require.Equal(t, 3.0, d("tollgate_refunds_total"))
		require.Equal(t, 4.5e6, d("tollgate_refunded_microcredits_total"))
		require.Zero(t, d("tollgate_shortfalls_total"))
		// A leased request either took a lease or was admitted from one.
		require.LessOrEqual(t, d("tollgate_credit_lease_admissions_total")+d("tollgate_credit_leases_taken_total"), float64(leased))
		// 3 reservations of 2 and the leased charges of 1, all from awarded.
		require.Equal(t, float64(6+leased)*1e6, d(`tollgate_charged_microcredits_total{bucket="awarded"}`))
	})

	t.Run("a reload keeps counting and registers once", func(t *testing.T) {
		was := scrapeMetrics(t, adminMetrics)
		// The same config with a change: a new App, a new registry.
		loadCaddyfile(t, config("sweep_interval 7s"))
		now := scrapeMetrics(t, adminMetrics)
		require.Equal(t, was.get(`tollgate_requests_total{outcome="charged"}`), now.get(`tollgate_requests_total{outcome="charged"}`))
		resp, _ := g.do(t, "GET", "/leased/x", bob)
		require.Equal(t, 200, resp.StatusCode)
		now = scrapeMetrics(t, adminMetrics)
		require.Equal(t, was.get(`tollgate_requests_total{outcome="charged"}`)+1, now.get(`tollgate_requests_total{outcome="charged"}`))
		// The site's `metrics` handler serves the same registry.
		site := scrapeMetrics(t, g.base+"/metrics")
		require.Equal(t, now.get(`tollgate_requests_total{outcome="charged"}`), site.get(`tollgate_requests_total{outcome="charged"}`))
	})

	t.Run("every metric the dashboard and the alerts use is exported", func(t *testing.T) {
		exported := scrapeMetrics(t, adminMetrics)
		exprs := dashboardExprs(t)
		exprs = append(exprs, alertExprs(t)...)
		require.Greater(t, len(exprs), 20)
		used := map[string]bool{}
		for _, e := range exprs {
			names, err := promqlMetricNames(e)
			require.NoError(t, err, e)
			require.NotEmpty(t, names, "no metric in %q", e)
			for _, n := range names {
				require.Regexp(t, `^tollgate_`, n, "in %q", e)
				require.True(t, exported.has(n), "%s (in %q) is not exported", n, e)
				used[n] = true
			}
		}
		t.Logf("%d queries name %d metrics", len(exprs), len(used))
	})

	t.Run("project label when the operator enables it", func(t *testing.T) {
		loadCaddyfile(t, config("metrics_per_project"))
		resp, _ := g.do(t, "GET", "/tracked/x", ann)
		require.Equal(t, 402, resp.StatusCode)
		resp, _ = g.do(t, "GET", "/leased/x", bob)
		require.Equal(t, 200, resp.StatusCode)
		s := scrapeMetrics(t, adminMetrics)
		require.Positive(t, s.get(`tollgate_requests_total{outcome="insufficient",project="school"}`))
		require.Positive(t, s.get(`tollgate_charged_microcredits_total{bucket="awarded",project=""}`))
		require.False(t, s.has(`tollgate_requests_total{outcome="charged"}`), "one label set per config")
	})
}

// Without Redis the gateway refuses requests as unavailable, and its
// scrape says Redis is down (what TollgateRedisUnavailable fires on) and
// leaves out the figures it could not read.
func TestMetricsWithoutRedis(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	up := newUpstream(t)
	adminAddr, listen := freePort(t), freePort(t)
	dead := "redis://" + freePort(t) + "/0" // nothing listens there
	startGateway(t, metricsGatewayConfig(t, b, dead, adminAddr, listen, up.Listener.Addr().String(), ""))
	g := gateway{base: "http://" + listen, client: http.DefaultClient}
	key, _ := metering.NewAPIKey()

	before := scrapeMetrics(t, g.base+"/metrics")
	resp, _ := g.do(t, "GET", "/tracked/x", key)
	require.Equal(t, 503, resp.StatusCode)
	after := scrapeMetrics(t, g.base+"/metrics")
	series := `tollgate_requests_total{outcome="unavailable"}`
	require.Equal(t, 1.0, after.get(series)-before.get(series))
	require.Equal(t, 0.0, after.get("tollgate_redis_up"))
	require.True(t, after.has("tollgate_redis_up"))
	require.Equal(t, 1.0, after.get("tollgate_postgres_up"))
	for _, name := range []string{"tollgate_reconcile_lag_seconds", "tollgate_stream_backlog_events", "tollgate_dead_letters"} {
		require.False(t, after.has(name), "%s without Redis", name)
	}
	require.Zero(t, up.hits.Load(), "nothing reaches upstream unmetered")
}

// dashboardExprs returns every query of the Grafana dashboard's panels.
func dashboardExprs(t *testing.T) []string {
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "tollgate.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// alertExprs returns every alert rule's expression, after checking the
// rule file with promtool when it is installed (Debian's `prometheus`
// package ships it; the scan above checks the names either way).
func alertExprs(t *testing.T) []string {
	path := filepath.Join("..", "deploy", "prometheus", "tollgate-alerts.yml")
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
		require.NoError(t, err, "promtool check rules: %s", out)
	} else {
		t.Log("promtool is not installed: the rule file's syntax was not checked by Prometheus's own parser")
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	var exprs []string
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Expr, r.Alert)
			exprs = append(exprs, r.Expr)
			alerts[r.Alert] = true
		}
	}
	for _, a := range []string{"TollgateReconcileLag", "TollgateDeadLetters", "TollgateRedisUnavailable", "TollgateRefusalSpike"} {
		require.True(t, alerts[a], "alert %s", a)
	}
	return exprs
}
