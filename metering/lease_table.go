package metering

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// leaseTable is this gateway's credit leases: a slot per user, every lease
// not yet ended in Redis (live), those whose ending failed (retry), and
// the background loops that flush, end, renew the heartbeat and read
// recalls. It starts with the first leased charge and stops with the
// engine, ending every lease it holds.
type leaseTable struct {
	e         *Engine
	cfg       LeaseConfig
	gatewayID string

	// base is the monotonic origin of aliveUntil: the heartbeat is judged
	// on this process's monotonic clock, never on the engine's (settable)
	// one.
	base       time.Time
	aliveUntil atomic.Int64 // ns since base; admissions from memory until then
	lastRecall atomic.Pointer[string]

	// slotMu guards slots: read on every leased charge, written when a
	// user is first seen.
	slotMu sync.RWMutex
	slots  map[int64]*leaseSlot
	mu     sync.Mutex // guards live and retry
	live   map[*creditLease]struct{}
	retry  map[*creditLease]struct{}

	started atomic.Bool
	startMu sync.Mutex
	bg      background
	kickc   chan struct{}
}

func newLeaseTable(e *Engine, cfg LeaseConfig) *leaseTable {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &leaseTable{e: e, cfg: cfg, gatewayID: hex.EncodeToString(id[:]), base: time.Now(),
		slots: map[int64]*leaseSlot{}, live: map[*creditLease]struct{}{}, retry: map[*creditLease]struct{}{},
		kickc: make(chan struct{}, 1)}
}

func (t *leaseTable) alive() bool { return int64(time.Since(t.base)) < t.aliveUntil.Load() }

func (t *leaseTable) slot(userID int64) *leaseSlot {
	t.slotMu.RLock()
	s := t.slots[userID]
	t.slotMu.RUnlock()
	if s != nil {
		return s
	}
	t.slotMu.Lock()
	defer t.slotMu.Unlock()
	if s = t.slots[userID]; s == nil {
		s = &leaseSlot{}
		t.slots[userID] = s
	}
	return s
}

func (t *leaseTable) track(l *creditLease) {
	t.mu.Lock()
	t.live[l] = struct{}{}
	t.mu.Unlock()
}

func (t *leaseTable) untrack(l *creditLease) {
	t.mu.Lock()
	delete(t.live, l)
	delete(t.retry, l)
	t.mu.Unlock()
}

// retryLater hands an ended lease to the background loop, which appends
// its uses and ends it (again) until that succeeds.
func (t *leaseTable) retryLater(l *creditLease) {
	t.mu.Lock()
	t.live[l] = struct{}{}
	t.retry[l] = struct{}{}
	t.mu.Unlock()
	t.kick()
}

// kick wakes the background loop before its next tick.
func (t *leaseTable) kick() {
	select {
	case t.kickc <- struct{}{}:
	default:
	}
}

// detach removes l from its user's slot, waiting for a take in progress.
func (t *leaseTable) detach(l *creditLease) {
	t.slotMu.RLock()
	s := t.slots[l.userID]
	t.slotMu.RUnlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.l == l {
		s.l = nil
	}
	s.mu.Unlock()
}

func (t *leaseTable) start() {
	if t.started.Load() {
		return
	}
	t.startMu.Lock()
	defer t.startMu.Unlock()
	if t.started.Load() {
		return
	}
	t.bg.start(context.Background(), t.run)
	t.started.Store(true)
}

// stop ends the loops, then every lease this gateway holds, and leaves the
// gateway set (a recall then no longer waits for it).
func (t *leaseTable) stop() {
	t.startMu.Lock()
	defer t.startMu.Unlock()
	if !t.started.Load() {
		return
	}
	t.aliveUntil.Store(0)
	t.bg.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*t.e.cfg.ScriptTimeout)
	defer cancel()
	t.endAll(ctx, "")
	t.mu.Lock()
	left := len(t.live)
	t.mu.Unlock()
	if left > 0 {
		t.e.log.Warn("credit leases left to the sweeper at shutdown", zap.Int("leases", left))
	}
	if err := t.e.rdb.ZRem(ctx, t.e.keys.Gateways(), t.gatewayID).Err(); err != nil {
		t.e.log.Warn("leaving the gateway set failed; the heartbeat expires instead", zap.Error(err))
	}
	t.started.Store(false)
}

func (t *leaseTable) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); t.recallLoop(ctx) }()
	go func() { defer wg.Done(); t.heartbeatLoop(ctx) }()
	go func() { defer wg.Done(); t.workLoop(ctx) }()
	wg.Wait()
}

// workLoop flushes pending uses, ends leases that idled, reached their
// deadline or outlived the heartbeat, and retries failed endings.
func (t *leaseTable) workLoop(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Flush)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.kickc:
		}
		t.workOnce(ctx)
	}
}

func (t *leaseTable) workOnce(ctx context.Context) {
	now, alive := t.e.cfg.Now(), t.alive()
	t.mu.Lock()
	ls := make([]*creditLease, 0, len(t.live))
	for l := range t.live {
		ls = append(ls, l)
	}
	t.mu.Unlock()
	parallel(ls, func(l *creditLease) {
		l.mu.Lock()
		retry := l.ended
		expired := !l.ended && (!alive || !now.Before(l.deadline) || now.Sub(l.lastUse) >= t.cfg.Idle)
		pending := len(l.pending) > 0
		l.mu.Unlock()
		switch {
		case expired:
			t.detach(l)
			t.finish(ctx, l, "")
		case retry:
			t.mu.Lock()
			_, due := t.retry[l]
			t.mu.Unlock()
			if due {
				if err := t.flushAndEnd(ctx, l, ""); err != nil {
					t.e.log.Debug("ending a credit lease failed again", zap.String("lease", l.id), zap.Error(err))
				}
			}
		case pending:
			if err := t.flush(ctx, l); err != nil {
				t.e.log.Warn("appending leased usage failed; retrying", zap.String("lease", l.id), zap.Error(err))
			}
		}
	})
}

// endAll ends every lease this gateway holds (shutdown).
func (t *leaseTable) endAll(ctx context.Context, note string) {
	t.mu.Lock()
	ls := make([]*creditLease, 0, len(t.live))
	for l := range t.live {
		ls = append(ls, l)
	}
	t.mu.Unlock()
	parallel(ls, func(l *creditLease) {
		t.detach(l)
		t.finish(ctx, l, note)
	})
}

// parallel runs fn for each lease, up to 32 at a time, so the script runner
// pipelines their calls instead of paying a round trip each in turn.
func parallel(ls []*creditLease, fn func(*creditLease)) {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, l := range ls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(l)
		}()
	}
	wg.Wait()
}

// leaseEnd is one lease_end.lua call as the engine makes it.
type leaseEnd struct {
	id                string
	userID, projectID int64
	used              Credits // -1: as its record says (the sweeper)
	note              string
}

// endLease runs lease_end.lua, loading the user or the project into Redis
// when the script asks.
func (e *Engine) endLease(ctx context.Context, a leaseEnd) (leaseEndAnswer, error) {
	orphan := false
	sh := e.keys.ShardOf(a.projectID, a.userID)
	projectKey := sh.User(a.userID)
	if a.projectID != 0 {
		projectKey = sh.Project(a.projectID)
	}
	for attempt := 0; attempt < 3; attempt++ {
		c := getCall(leaseEndScript)
		args := leaseEndArgs{UserKey: sh.User(a.userID), ProjectKey: projectKey, EventsKey: sh.Events(),
			RecordKey: sh.CreditLease(a.id), LeasesKey: sh.CreditLeases(),
			UserLeasesKey: sh.UserCreditLeases(a.userID), NowMs: e.cfg.Now().UnixMilli(), LeaseID: a.id,
			Used: a.used, MarkerSeconds: int64(cancelMarkerTTL / time.Second), Note: a.note, Orphan: orphan}
		args.fill(c)
		err := e.runner.Run(ctx, c)
		var ans leaseEndAnswer
		if err == nil {
			ans, err = parseLeaseEndAnswer(c.Res)
		}
		putCall(c)
		if err != nil {
			return ans, err
		}
		switch ans.Status {
		case scriptOK, scriptInsufficient:
			return ans, nil
		case scriptNoUser:
			_, found, err := e.loadUser(ctx, a.userID)
			if err != nil {
				return ans, err
			}
			orphan = !found
		case scriptNoProject:
			if err := e.loadProject(ctx, a.projectID); err != nil {
				return ans, err
			}
		case scriptTooMuchUsed:
			return ans, fmt.Errorf("credit lease %s: ended with more use (%d) than it holds", a.id, a.used)
		}
	}
	return leaseEndAnswer{}, fmt.Errorf("%w: credit lease %s did not end after repeated loads", ErrUnavailable, a.id)
}

// EndLeases ends every credit lease this gateway holds now: their
// requests' usage appended, the rest given back. Shutdown does it too.
func (e *Engine) EndLeases(ctx context.Context) { e.leases.endAll(ctx, "") }

// StartLeases starts this gateway's lease loops (heartbeat, recalls,
// flushes) ahead of the first leased charge, which would start them too;
// admissions from memory begin with the first heartbeat.
func (e *Engine) StartLeases() { e.leases.start() }
