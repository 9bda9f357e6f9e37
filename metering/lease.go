package metering

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Per-gateway credit leases: a gateway takes credits for a busy user from
// Redis in one script call (lease_take.lua: through the waterfall, as a
// hold) and admits the user's following fixed-cost requests from them in
// memory, exactly, with no round trip. The usage events of those requests
// are appended in batches (lease_flush.lua); what the lease did not use
// goes back when it ends (lease_end.lua): when it idles, near its deadline,
// at a period boundary, when it cannot pay the next request, on a recall
// (an admin change, lease_gateway.go) and on shutdown. docs/architecture.md
// ("Credit leases") says why this is exact and what a crash can cost.

// LeaseConfig configures credit leases.
type LeaseConfig struct {
	// Requests sizes a lease: credits for this many requests of the cost
	// that takes it, within a quarter of the user's balance shared among
	// the user's leases (lease_take.lua). Default 100.
	Requests int64
	// Idle: a lease unused this long is ended. Default 2s.
	Idle time.Duration
	// Life: the longest a lease is used. Default 30s.
	Life time.Duration
	// Flush: how often admitted requests' usage events are appended.
	// Default 100ms.
	Flush time.Duration
	// FlushBatch: a lease with this many unappended uses is flushed at once.
	// Default 256.
	FlushBatch int
	// Heartbeat: how long a gateway's heartbeat lasts; renewed every fifth
	// of it. A recall waits at most this long for a gateway that stopped
	// answering. Default 5s.
	Heartbeat time.Duration
	// SweepGrace: how long after a lease's last possible use the sweeper
	// may end it (its gateway died). Default 2m.
	SweepGrace time.Duration
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c LeaseConfig) WithDefaults() LeaseConfig {
	if c.Requests == 0 {
		c.Requests = 100
	}
	if c.Idle == 0 {
		c.Idle = 2 * time.Second
	}
	if c.Life == 0 {
		c.Life = 30 * time.Second
	}
	if c.Flush == 0 {
		c.Flush = 100 * time.Millisecond
	}
	if c.FlushBatch == 0 {
		c.FlushBatch = 256
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.SweepGrace == 0 {
		c.SweepGrace = 2 * time.Minute
	}
	return c
}

func (c LeaseConfig) validate() error {
	switch {
	case c.Requests < 1:
		return invalid("lease requests", "must be at least 1")
	case c.Idle < 0 || c.Life <= 0 || c.Flush <= 0 || c.SweepGrace <= 0:
		return invalid("lease durations", "must be positive")
	case c.Heartbeat < time.Second:
		return invalid("lease heartbeat", "must be at least 1s")
	case c.FlushBatch < 1 || c.FlushBatch > 10000:
		return invalid("lease flush batch", "must be 1..10000")
	}
	return nil
}

// creditLease is one lease this gateway holds.
type creditLease struct {
	id                      string
	userID, projectID       int64
	shard                   *ShardKeys
	userKey, projectKey     string
	userArg, projectArg     string
	username, projectName   string
	keyHash                 KeyHash
	userVersion, projectVer string
	size                    Credits
	taken                   Split
	outside                 Credits // what the user could spend outside it when taken
	deadline                time.Time
	recordDeadlineMs        int64

	mu      sync.Mutex
	used    Credits
	lastUse time.Time
	pending []leaseUse // admitted, usage events not yet appended
	ended   bool       // no more admissions; finish has begun
	endRan  bool       // lease_end.lua has run for it
	// note, when set, is the note its end event carries whoever ends it
	// (a take whose answer was lost: cancelNote).
	note string
}

// admit takes cost from the lease if it can pay it and is usable for this
// key now, recording the use; it answers what the user has left and how
// many uses wait for a flush.
func (l *creditLease) admit(ent *userEntry, h *KeyHash, cost Credits, eventID, request string, now time.Time,
	idle time.Duration, alive bool) (remaining Credits, split Split, pending int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || !alive || !now.Before(l.deadline) || now.Sub(l.lastUse) >= idle ||
		l.keyHash != *h || l.userVersion != ent.versionArg || l.projectVer != ent.projectVer ||
		l.size-l.used < cost {
		return 0, Split{}, 0, false
	}
	split = l.split(l.used, cost)
	l.used += cost
	l.lastUse = now
	l.pending = append(l.pending, leaseUse{EventID: eventID, AtMs: now.UnixMilli(), Cost: cost, Request: request})
	return l.outside + l.size - l.used, split, len(l.pending), true
}

// split is what a use of cost starting at offset from draws from each
// bucket: a lease is used in waterfall order, its allowance part first.
func (l *creditLease) split(from, cost Credits) Split {
	parts := [4]Credits{l.taken.Allowance, l.taken.Pool, l.taken.Awarded, l.taken.Purchased}
	var out [4]Credits
	start, end := from, from+cost
	var lo Credits
	for i, p := range parts {
		hi := lo + p
		a, b := max(start, lo), min(end, hi)
		if b > a {
			out[i] = b - a
		}
		lo = hi
	}
	return Split{out[0], out[1], out[2], out[3]}
}

// leaseSlot is one user's lease on this gateway. mu is held across a take
// (a Redis round trip), so one user's requests never take two leases at
// once, and a recall that takes mu waits for a take in progress.
type leaseSlot struct {
	mu sync.Mutex
	l  *creditLease
}

// ChargeLeased is Charge served from a credit lease when one can pay:
// final at admission, nothing in flight. Without a usable lease it takes
// one (one script call that also charges this request); near a zero
// balance leases hold a single request's cost, so every request makes its
// round trip as Charge does. A lease take whose answer is lost is undone
// (the request is refused and not charged).
func (e *Engine) ChargeLeased(ctx context.Context, key string, cost Credits, request string) (ChargeResult, error) {
	if !WellFormedKey(key) {
		return ChargeResult{Status: KeyRefused}, nil
	}
	if cost < 0 || cost > MaxCredits {
		return ChargeResult{}, fmt.Errorf("charge: cost %d out of range", cost)
	}
	t := e.leases
	t.start()
	h := e.hasher.Hash(key)
	for attempt := 0; attempt < 3; attempt++ {
		ent, err := e.resolve(ctx, h)
		if err != nil || ent == nil {
			return ChargeResult{Status: KeyRefused}, err
		}
		now := e.cfg.Now()
		s := t.slot(ent.userID)
		s.mu.Lock()
		if l := s.l; l != nil {
			rem, split, pending, ok := l.admit(ent, &h, cost, e.ids.Next(), request, now, t.cfg.Idle, t.alive())
			if ok {
				s.mu.Unlock()
				e.cfg.Metrics.add(LeaseAdmissions, 1)
				if pending >= t.cfg.FlushBatch {
					t.kick()
				}
				return ChargeResult{Status: Charged, UserID: ent.userID, Username: ent.username,
					Project: ent.project, Remaining: rem, Taken: split}, nil
			}
			// It cannot pay this request or may no longer be used: what it
			// holds goes back before a new lease is taken, so the new one
			// sees the whole balance (whether or not this client waits).
			s.l = nil
			t.finish(context.WithoutCancel(ctx), l, "")
		}
		res, status, err := t.take(ctx, s, ent, &h, cost, request, now)
		s.mu.Unlock()
		if err != nil || status == scriptOK || status == scriptInsufficient {
			return res, err
		}
		switch status {
		case scriptRefused:
			return ChargeResult{Status: KeyRefused}, nil
		case scriptDeleted:
			// Deleted, or moved to another shard: the lookup says which.
			e.cache.drop(h)
			continue
		case scriptCancelled:
			return ChargeResult{}, fmt.Errorf("%w: lease take was cancelled", ErrUnavailable)
		}
		refused, err := e.repair(ctx, h, ent, status)
		if err != nil {
			return ChargeResult{}, err
		}
		if refused {
			return ChargeResult{Status: KeyRefused}, nil
		}
	}
	return ChargeResult{}, fmt.Errorf("%w: charge did not settle after repeated cache refreshes", ErrUnavailable)
}

// take runs lease_take.lua for a request of cost and, on success, makes
// the lease the slot's (the caller holds s.mu). status is the script's.
func (t *leaseTable) take(ctx context.Context, s *leaseSlot, ent *userEntry, h *KeyHash, cost Credits,
	request string, now time.Time) (ChargeResult, int64, error) {
	e := t.e
	b := ent.periodBounds(now)
	// A gateway whose heartbeat is not current takes leases for the one
	// request only: it may not admit from memory.
	want := cost
	if t.alive() && cost > 0 {
		want = MaxCredits
		if cost <= MaxCredits/Credits(t.cfg.Requests) {
			want = cost * Credits(t.cfg.Requests)
		}
	}
	deadline := now.Add(t.cfg.Life)
	if b.until.Before(deadline) {
		deadline = b.until
	}
	if ent.expiresMs > 0 && ent.expiresMs < deadline.UnixMilli() {
		deadline = time.UnixMilli(ent.expiresMs)
	}
	l := &creditLease{id: e.ids.Next(), userID: ent.userID, projectID: ent.projectID, shard: ent.shard,
		userKey: ent.userKey, projectKey: ent.projectKey, userArg: ent.userArg, projectArg: formatInt(ent.projectID),
		username: ent.username, projectName: ent.project, keyHash: *h,
		userVersion: ent.versionArg, projectVer: ent.projectVer, deadline: deadline,
		recordDeadlineMs: deadline.Add(t.cfg.SweepGrace).UnixMilli()}
	args := leaseTakeArgs{UserKey: ent.userKey, ProjectKey: ent.projectKey, EventsKey: ent.shard.Events(),
		RecordKey: ent.shard.CreditLease(l.id), LeasesKey: ent.shard.CreditLeases(),
		UserLeasesKey: ent.shard.UserCreditLeases(ent.userID), KeyHash: ent.keyArg, UserVersion: ent.versionArg,
		ProjectVersion: ent.projectVer, NowMs: now.UnixMilli(), AllowanceStart: b.allowanceStart,
		Month: b.month, Cost: cost, Want: want, LeaseID: l.id, UserID: ent.userArg,
		DeadlineMs: l.recordDeadlineMs, GatewayID: t.gatewayID, Request: request,
		SingleSeconds: int64(cancelMarkerTTL / time.Second)}
	c := getCall(leaseTakeScript)
	args.fill(c)
	err := e.runner.Run(ctx, c)
	var ans leaseTakeAnswer
	if err == nil {
		ans, err = parseLeaseTakeAnswer(c.Res)
	}
	putCall(c)
	if err != nil {
		if errors.Is(err, ErrOutcomeUnknown) {
			// The request is refused: a lease it may have taken must go
			// back whole (lease_end.lua leaves a marker if it has not run).
			l.ended, l.note = true, cancelNote
			t.retryLater(l)
		}
		return ChargeResult{}, 0, err
	}
	switch ans.Status {
	case scriptOK:
	case scriptInsufficient:
		return ChargeResult{Status: Insufficient, UserID: ent.userID, Username: ent.username,
			Project: ent.project, Remaining: ans.Outside}, ans.Status, nil
	default:
		return ChargeResult{}, ans.Status, nil
	}
	l.size, l.taken, l.outside = ans.Size, ans.Taken, ans.Outside
	res := ChargeResult{Status: Charged, UserID: ent.userID, Username: ent.username, Project: ent.project,
		Remaining: ans.Outside + ans.Size - cost, Taken: l.split(0, cost)}
	if ans.Size == cost {
		// A lease of this request alone (a low balance, or a pool paying):
		// the script charged it as a plain charge; nothing to flush or end.
		return res, scriptOK, nil
	}
	l.used, l.lastUse = cost, now
	l.pending = append(l.pending, leaseUse{EventID: e.ids.Next(), AtMs: now.UnixMilli(), Cost: cost, Request: request})
	t.track(l)
	s.l = l
	e.cfg.Metrics.add(LeasesTaken, 1)
	return res, scriptOK, nil
}

// finish ends a lease that is detached from its slot: no more admissions,
// its pending uses appended, what it did not use given back. A failure
// leaves it to the background loop, which retries until it is done.
func (t *leaseTable) finish(ctx context.Context, l *creditLease, note string) {
	l.mu.Lock()
	l.ended = true
	l.mu.Unlock()
	if err := t.flushAndEnd(ctx, l, note); err != nil {
		t.e.log.Warn("ending a credit lease failed; retrying in the background",
			zap.String("lease", l.id), zap.String("user", l.username), zap.Error(err))
		t.retryLater(l)
	}
}

// flushAndEnd appends the lease's pending uses and ends it with its total
// use. Both steps can run again: events keep their ids, and ending a lease
// that has ended does nothing.
func (t *leaseTable) flushAndEnd(ctx context.Context, l *creditLease, note string) error {
	if l.note != "" {
		note = l.note
	}
	for {
		if err := t.flush(ctx, l); err != nil {
			return err
		}
		l.mu.Lock()
		used, endRan, more := l.used, l.endRan, len(l.pending) > 0
		l.mu.Unlock()
		if !endRan {
			if _, err := t.e.endLease(ctx, leaseEnd{id: l.id, userID: l.userID, projectID: l.projectID,
				used: used, note: note}); err != nil {
				return err
			}
			l.mu.Lock()
			l.endRan = true
			more = len(l.pending) > 0
			l.mu.Unlock()
			t.e.cfg.Metrics.add(LeasesEnded, 1)
		}
		// A flush that failed meanwhile put its uses back: append them too.
		if !more {
			t.untrack(l)
			return nil
		}
	}
}

// flush appends the lease's pending uses, in packed entries of at most
// maxPackedEvents. On failure the uses not yet appended stay pending. Each
// entry's call records the lease's use up to its own last use, so that the
// record never counts a use whose event is not in the stream (the sweeper
// ends a dead gateway's lease with the record's count).
func (t *leaseTable) flush(ctx context.Context, l *creditLease) error {
	l.mu.Lock()
	uses, used := l.pending, l.used
	l.pending = nil
	l.mu.Unlock()
	var later Credits // the cost of the uses after the current entry's
	for i := range uses {
		later += uses[i].Cost
	}
	for len(uses) > 0 {
		n := min(len(uses), maxPackedEvents)
		for i := range uses[:n] {
			later -= uses[i].Cost
		}
		if err := t.flushPacked(ctx, l, used-later, uses[:n]); err != nil {
			l.mu.Lock()
			l.pending = append(uses, l.pending...)
			l.mu.Unlock()
			return err
		}
		uses = uses[n:]
	}
	return nil
}

// flushPacked runs lease_flush.lua for uses, one packed entry.
func (t *leaseTable) flushPacked(ctx context.Context, l *creditLease, used Credits, uses []leaseUse) error {
	e := t.e
	c := getCall(leaseFlushScript)
	defer putCall(c)
	args := leaseFlushArgs{EventsKey: l.shard.Events(), RecordKey: l.shard.CreditLease(l.id), Used: used,
		UserID: l.userArg, Username: l.username, ProjectID: l.projectArg, ProjectName: l.projectName, Uses: uses}
	args.fill(c)
	if err := e.runner.Run(ctx, c); err != nil {
		return err
	}
	ended, err := parseLeaseFlushAnswer(c.Res)
	if err == nil && ended && !l.hasEndRun() {
		// The sweeper ended a lease this gateway still used (it was cut
		// off from Redis past the grace): these requests were served
		// from credits that went back. Logged; docs/architecture.md
		// bounds it by one lease.
		e.log.Warn("usage recorded for a credit lease the sweeper had ended",
			zap.String("lease", l.id), zap.String("user", l.username))
	}
	return err
}

func (l *creditLease) hasEndRun() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endRan
}
