package caddymodule

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/metering"
)

// outcome is what the metering handler did with a request: the `outcome`
// label of tollgate_requests_total. A fixed list, so the label is bounded.
type outcome int

const (
	// outcomeCharged: paid for (a charge, a credit lease admission or a
	// reservation) and passed on.
	outcomeCharged outcome = iota
	// outcomeInsufficient: refused 402 (or 429) for want of credits.
	outcomeInsufficient
	// outcomeInvalidKey: refused 401, whatever was wrong with the key.
	outcomeInvalidKey
	// outcomeUnavailable: refused 503, metering could not be done (Redis).
	outcomeUnavailable
	// outcomeRefusedBody: a priced route refused the body (413 too large,
	// 400 not a request it can estimate).
	outcomeRefusedBody
	// outcomeUnknownModel: refused 400, no price for the model.
	outcomeUnknownModel
	// outcomeCanceled: the client left before metering was done (while
	// sending its body, or while Redis was asked). Not a refusal, and not
	// a sign of Redis trouble.
	outcomeCanceled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"charged", "insufficient", "invalid_key", "unavailable", "refused_body",
	"unknown_model", "canceled"}

// bucketNames are the `bucket` label's values, in waterfall order (as in
// metering.Split).
var bucketNames = [4]string{"allowance", "pool", "awarded", "purchased"}

// requestMetrics counts the handlers' requests by outcome and the credits
// they took by bucket, with a `project` label when the operator asked for
// one (metrics_per_project). Each label set's counters are resolved once
// (a seriesSet), so counting is an atomic add per counter; per project,
// the project's set is found first (one sync.Map read).
type requestMetrics struct {
	perProject bool
	requests   *prometheus.CounterVec
	charged    *prometheus.CounterVec
	plain      *seriesSet // perProject false
	projects   sync.Map   // perProject true: project name → *seriesSet
}

// seriesSet is one label set's counters: every outcome and every bucket.
type seriesSet struct {
	byOutcome [numOutcomes]prometheus.Counter
	byBucket  [4]prometheus.Counter
}

// The two sets of request counters, made once per process so that they
// keep counting across config reloads; a config uses one of them.
var (
	requestsPlain      = newRequestMetrics(false)
	requestsPerProject = newRequestMetrics(true)
)

func requestMetricsFor(perProject bool) *requestMetrics {
	if perProject {
		return requestsPerProject
	}
	return requestsPlain
}

func newRequestMetrics(perProject bool) *requestMetrics {
	outcomeLabels, bucketLabels := []string{"outcome"}, []string{"bucket"}
	if perProject {
		outcomeLabels, bucketLabels = append(outcomeLabels, "project"), append(bucketLabels, "project")
	}
	m := &requestMetrics{perProject: perProject,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_requests_total",
			Help: "Requests the metering handler answered or passed on, by outcome."}, outcomeLabels),
		charged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_charged_microcredits_total",
			Help: "Micro-credits (1 credit = 1,000,000) taken to admit requests (charges, credit lease admissions, reservations before settlement), by bucket."},
			bucketLabels)}
	if !perProject {
		m.plain = m.newSeriesSet()
	}
	return m
}

// newSeriesSet resolves the counters of one label set: with the project
// label when there is one (every outcome and bucket of a project appear
// together, at zero, when its first request is counted).
func (m *requestMetrics) newSeriesSet(project ...string) *seriesSet {
	s := &seriesSet{}
	for i, name := range outcomeNames {
		s.byOutcome[i] = m.requests.WithLabelValues(append([]string{name}, project...)...)
	}
	for i, name := range bucketNames {
		s.byBucket[i] = m.charged.WithLabelValues(append([]string{name}, project...)...)
	}
	return s
}

// series is the label set a request of project counts in.
func (m *requestMetrics) series(project string) *seriesSet {
	if !m.perProject {
		return m.plain
	}
	if s, ok := m.projects.Load(project); ok {
		return s.(*seriesSet)
	}
	s, _ := m.projects.LoadOrStore(project, m.newSeriesSet(project))
	return s.(*seriesSet)
}

// count counts one request's outcome. A nil requestMetrics (a handler
// built without Provision, as unit tests do) counts nothing.
func (m *requestMetrics) count(o outcome, project string) {
	if m != nil {
		m.series(project).byOutcome[o].Inc()
	}
}

// admitted counts a request that was paid for, and what it took from each
// bucket (micro-credits: integers, which a Prometheus counter adds exactly
// up to 2^53, some 9 billion credits).
func (m *requestMetrics) admitted(project string, taken metering.Split) {
	if m == nil {
		return
	}
	s := m.series(project)
	s.byOutcome[outcomeCharged].Inc()
	for i, c := range [4]metering.Credits{taken.Allowance, taken.Pool, taken.Awarded, taken.Purchased} {
		if c > 0 {
			s.byBucket[i].Add(float64(c))
		}
	}
}
