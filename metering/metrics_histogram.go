package metering

import "sync/atomic"

// Histogram counts observations into fixed buckets with atomic adds: no
// lock and no allocation per observation, so it can sit on the hot path.
// An exporter reads it with Snapshot.
type Histogram struct {
	bounds []int64         // upper bounds, inclusive, ascending
	counts []atomic.Uint64 // per bucket; the last one is above every bound
	sum    atomic.Int64
}

// newHistogram makes a histogram over ascending upper bounds.
func newHistogram(bounds []int64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// observe counts v. The bucket lists are short (under 20 bounds), where a
// linear scan beats a binary search.
func (h *Histogram) observe(v int64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// HistogramSnapshot is a histogram as Prometheus reads one: for each upper
// bound the number of observations at or below it (cumulative), their
// total count and their sum. Buckets are read one by one while others may
// still count, so Count and Sum can be a few observations apart; each
// figure is exact for some moment.
type HistogramSnapshot struct {
	Bounds     []int64
	Cumulative []uint64
	Count      uint64
	Sum        int64
}

// Snapshot reads the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Cumulative: make([]uint64, len(h.bounds))}
	for i := range h.bounds {
		s.Count += h.counts[i].Load()
		s.Cumulative[i] = s.Count
	}
	s.Count += h.counts[len(h.bounds)].Load()
	s.Sum = h.sum.Load()
	return s
}
