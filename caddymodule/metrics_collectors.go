package caddymodule

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/metering"
)

// engineCollector exports metering.Metrics: its counters and histograms
// are read when Prometheus scrapes, so the engine counts with bare atomic
// adds and knows nothing of Prometheus.
type engineCollector struct{ m *metering.Metrics }

// engineCounter is one of metering.Metrics' counters under its
// Prometheus name.
type engineCounter struct {
	desc *prometheus.Desc
	id   metering.CounterID
}

func counterDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, nil, nil)
}

var engineCounters = []engineCounter{
	{counterDesc("tollgate_reservations_opened_total", "Reservations opened (variable-cost requests admitted)."), metering.ReservationsOpened},
	{counterDesc("tollgate_reservations_settled_total", "Reservations settled, by the request or by the sweeper."), metering.ReservationsSettled},
	{counterDesc("tollgate_reservations_swept_total", "Reservations the sweeper settled because their lease ran out (their gateway died or lost Redis)."), metering.ReservationsSwept},
	{counterDesc("tollgate_refunds_total", "Settlements that gave part of a reservation back."), metering.Refunds},
	{counterDesc("tollgate_refunded_microcredits_total", "Micro-credits settlements gave back."), metering.RefundedCredits},
	{counterDesc("tollgate_overrun_microcredits_total", "Micro-credits settlements cost above their reservation."), metering.OverrunCredits},
	{counterDesc("tollgate_shortfalls_total", "Settlements whose overrun the user could not pay in full."), metering.Shortfalls},
	{counterDesc("tollgate_shortfall_microcredits_total", "Micro-credits of overruns the users could not pay."), metering.ShortfallCredits},
	{counterDesc("tollgate_credit_leases_taken_total", "Credit leases this gateway took."), metering.LeasesTaken},
	{counterDesc("tollgate_credit_leases_ended_total", "Credit leases this gateway ended (idle, expired, recalled, unable to pay, shutdown)."), metering.LeasesEnded},
	{counterDesc("tollgate_credit_leases_swept_total", "Credit leases the sweeper ended because their gateway stopped using them."), metering.LeasesSwept},
	{counterDesc("tollgate_credit_lease_admissions_total", "Requests admitted from a credit lease in memory, without a Redis round trip."), metering.LeaseAdmissions},
	{counterDesc("tollgate_credit_lease_recalls_total", "Credit lease recalls (admin changes) this gateway applied."), metering.Recalls},
	{counterDesc("tollgate_sweeper_runs_total", "Sweeps this gateway ran (holding the deployment's sweeper lock)."), metering.SweeperRuns},
	{counterDesc("tollgate_sweeper_failures_total", "Sweeps that failed (Redis or Postgres unreachable)."), metering.SweeperFailures},
	{counterDesc("tollgate_reconciled_events_total", "Events this gateway's reconciler recorded in the ledger or dead-lettered."), metering.ReconciledEvents},
	{counterDesc("tollgate_reconcile_failures_total", "Reconciler rounds that failed (Redis or Postgres unreachable, a refused batch); their events are read again."), metering.ReconcileFailures},
}

var (
	scriptLatencyDesc = prometheus.NewDesc("tollgate_redis_script_duration_seconds",
		"Round trip of the Redis pipelines that carried each script's calls.", []string{"script"}, nil)
	batchSizeDesc = prometheus.NewDesc("tollgate_redis_pipeline_calls",
		"Script calls per Redis pipeline.", nil, nil)
)

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, ec := range engineCounters {
		ch <- ec.desc
	}
	ch <- scriptLatencyDesc
	ch <- batchSizeDesc
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ec := range engineCounters {
		ch <- prometheus.MustNewConstMetric(ec.desc, prometheus.CounterValue, float64(c.m.Count(ec.id)))
	}
	c.m.ScriptLatency(func(script string, h *metering.Histogram) {
		ch <- constHistogram(scriptLatencyDesc, h.Snapshot(), 1e-9, script)
	})
	ch <- constHistogram(batchSizeDesc, c.m.BatchSize.Snapshot(), 1)
}

// constHistogram is a histogram snapshot for Prometheus, its bounds and sum
// multiplied by unit (1e-9: nanoseconds to seconds).
func constHistogram(desc *prometheus.Desc, s metering.HistogramSnapshot, unit float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(s.Bounds))
	for i, b := range s.Bounds {
		buckets[float64(b)*unit] = s.Cumulative[i]
	}
	return prometheus.MustNewConstHistogram(desc, s.Count, float64(s.Sum)*unit, buckets, labels...)
}

// storesCollector reads, when scraped, what the stores hold rather than
// what this gateway counted: whether Redis and Postgres answer, and the
// ledger's backlog (the same figures as the admin API's /health). Every
// gateway of a deployment reports the same backlog.
type storesCollector struct{ engine *metering.Engine }

// storesScrapeTimeout bounds the reads one scrape makes, well inside
// Prometheus's default scrape timeout (10s).
const storesScrapeTimeout = 3 * time.Second

var (
	redisUpDesc = prometheus.NewDesc("tollgate_redis_up",
		"1 when Redis answered this scrape's reads, else 0 (the gateway then refuses every metered request with 503).", nil, nil)
	postgresUpDesc = prometheus.NewDesc("tollgate_postgres_up",
		"1 when Postgres answered this scrape's ping, else 0 (requests are still served; the ledger falls behind).", nil, nil)
	reconcileLagDesc = prometheus.NewDesc("tollgate_reconcile_lag_seconds",
		"Age of the oldest event not yet in the Postgres ledger, 0 when it is drained (absent while Redis does not answer).", nil, nil)
	backlogDesc = prometheus.NewDesc("tollgate_stream_backlog_events",
		"Events in the Redis stream waiting for the ledger (absent while Redis does not answer).", nil, nil)
	deadLettersDesc = prometheus.NewDesc("tollgate_dead_letters",
		"Events the ledger could not record, held in the dead-letter stream for an admin (absent while Redis does not answer).", nil, nil)
)

func (c *storesCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{redisUpDesc, postgresUpDesc, reconcileLagDesc, backlogDesc, deadLettersDesc} {
		ch <- d
	}
}

func (c *storesCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.engine.CheckHealth(context.Background(), storesScrapeTimeout)
	ch <- prometheus.MustNewConstMetric(redisUpDesc, prometheus.GaugeValue, up(h.Redis))
	ch <- prometheus.MustNewConstMetric(postgresUpDesc, prometheus.GaugeValue, up(h.Postgres))
	if h.Redis != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(reconcileLagDesc, prometheus.GaugeValue, h.ReconcileLag.Seconds())
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(h.Backlog))
	ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(h.DeadLetters))
}

func up(err error) float64 {
	if err != nil {
		return 0
	}
	return 1
}
