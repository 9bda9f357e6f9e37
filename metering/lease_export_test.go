package metering

import "context"

// Hooks for the credit-lease tests.

// CrashLeasesForTest stops this gateway's lease loops as a killed process
// would: nothing flushed, nothing ended, the gateway set not left. Its
// leases stay in Redis for the sweeper; its heartbeat runs out.
func (e *Engine) CrashLeasesForTest() {
	t := e.leases
	t.startMu.Lock()
	defer t.startMu.Unlock()
	t.bg.stop()
	t.mu.Lock()
	t.live = map[*creditLease]struct{}{}
	t.retry = map[*creditLease]struct{}{}
	t.mu.Unlock()
}

// LeaseAliveForTest reports whether this gateway admits from memory now.
func (e *Engine) LeaseAliveForTest() bool { return e.leases.alive() }

// PendingLeaseUsesForTest counts the admitted uses not yet appended.
func (e *Engine) PendingLeaseUsesForTest() int {
	t := e.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for l := range t.live {
		l.mu.Lock()
		n += len(l.pending)
		l.mu.Unlock()
	}
	return n
}

// EndLeaseForTest runs lease_end.lua for a lease id, as a lost take's
// cancel does.
func (e *Engine) EndLeaseForTest(ctx context.Context, id string, userID int64, used Credits) error {
	_, err := e.endLease(ctx, leaseEnd{id: id, userID: userID, used: used})
	return err
}
