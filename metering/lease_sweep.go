package metering

import "context"

// sweepLeaseNote is the note of a lease_end event the sweeper appends.
const sweepLeaseNote = "credit lease expired: its gateway did not end it"

// sweepCreditLeases ends up to Batch credit leases past their record
// deadline: their gateway died or lost Redis for longer than the grace.
// Each ends with the use its last flush recorded; what the gateway
// admitted after that flush is not charged (docs/architecture.md, "Credit
// leases": at most one lease per user and gateway). more reports a full
// batch.
func (s *Sweeper) sweepCreditLeases(ctx context.Context, sh *ShardKeys) (ended int, more bool, err error) {
	e := s.e
	return s.sweepExpired(ctx, sh.CreditLeases(), sh.CreditLease, func(id string, uid, pid int64) (bool, error) {
		ans, err := e.endLease(ctx, leaseEnd{id: id, userID: uid, projectID: pid, used: -1, note: sweepLeaseNote})
		swept := err == nil && ans.Status == scriptOK
		if swept {
			e.cfg.Metrics.add(LeasesSwept, 1)
		}
		return swept, err
	})
}
