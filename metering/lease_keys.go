package metering

import "strconv"

// The Redis keys of credit leases (lease.go), in the shard of the user who
// holds them, and of the gateways that hold them (lease_gateway.go), under
// the deployment's own tag.

// CreditLeases is the sorted set of the shard's open credit leases: lease
// id → record deadline (Unix ms). The sweeper ends the members past it.
func (s *ShardKeys) CreditLeases() string { return s.creditLeases }

// UserCreditLeases is one user's open credit leases (same members and
// scores); lease_take.lua counts them to size a new lease.
func (s *ShardKeys) UserCreditLeases(userID int64) string {
	return s.tag + ":cl:u:" + strconv.FormatInt(userID, 10)
}

// CreditLease is a lease's record, from lease_take.lua until lease_end.lua.
// The same name scheme as Reservation: a lease id is an event id.
func (s *ShardKeys) CreditLease(id string) string { return s.Reservation(id) }

// Gateways is the sorted set of gateways that admit from credit leases:
// gateway id → alive until (Unix ms, Redis's clock).
func (k RedisKeys) Gateways() string { return k.tag + ":gw" }

// Recalls is the stream of lease recalls every such gateway reads.
func (k RedisKeys) Recalls() string { return k.tag + ":recalls" }

// RecallAcks is the list a recall's acknowledgements are pushed to.
func (k RedisKeys) RecallAcks(recallID string) string { return k.tag + ":recalls:ack:" + recallID }
