package metering

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// sweepLeaseNote is the note of a lease_end event the sweeper appends.
const sweepLeaseNote = "credit lease expired: its gateway did not end it"

// sweepCreditLeases ends up to Batch credit leases past their record
// deadline: their gateway died or lost Redis for longer than the grace.
// Each ends with the use its last flush recorded; what the gateway
// admitted after that flush is not charged (docs/architecture.md, "Credit
// leases": at most one lease per user and gateway). more reports a full
// batch.
func (s *Sweeper) sweepCreditLeases(ctx context.Context) (ended int, more bool, err error) {
	e := s.e
	now := e.cfg.Now().UnixMilli()
	ids, err := e.rdb.ZRangeByScore(ctx, e.keys.CreditLeases(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now, 10), Count: int64(s.cfg.Batch)}).Result()
	if err != nil {
		return 0, false, unavailable(err)
	}
	for _, id := range ids {
		f, err := e.rdb.HMGet(ctx, e.keys.CreditLease(id), "u", "p").Result()
		if err != nil {
			return ended, false, unavailable(err)
		}
		if f[0] == nil {
			// Ended between the two reads, or a member without its record.
			e.rdb.ZRem(ctx, e.keys.CreditLeases(), id)
			continue
		}
		uid, err1 := strconv.ParseInt(f[0].(string), 10, 64)
		pid, err2 := strconv.ParseInt(f[1].(string), 10, 64)
		if err1 != nil || err2 != nil {
			return ended, false, fmt.Errorf("credit lease %s: bad user or project %v", id, f)
		}
		ans, err := e.endLease(ctx, leaseEnd{id: id, userID: uid, projectID: pid, used: -1, note: sweepLeaseNote})
		if err != nil {
			return ended, false, err
		}
		if ans.Status == scriptOK {
			ended++
		}
	}
	return ended, len(ids) == s.cfg.Batch, nil
}
