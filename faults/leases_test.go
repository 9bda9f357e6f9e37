//go:build faults

package faults

import (
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/metering"
)

// sweptLeaseNote is the note of a lease_end the sweeper appends for a
// lease its gateway did not end (metering/lease_sweep.go).
const sweptLeaseNote = "credit lease expired: its gateway did not end it"

// leasedLabel tells the usage events of the leased route (/l/) apart.
func leasedLabel(request string) bool { return strings.HasPrefix(request, "GET /l/") }

// userLeases is what the ledger says of one user's credit leases.
type userLeases struct {
	taken, ended  int
	charged       int64 // what the leases kept: taken less given back and forfeited
	usageCost     int64 // the cost of the leased route's usage events
	sweptUnused   int64 // what the leases the sweeper ended gave back (or forfeited)
	swept         int
	unendedLeases []string
}

// checkCreditLeases holds the leased route to its invariants, once quiet:
//
//   - every lease has its lease_end (quiet waited for the lease set to
//     empty; this is the ledger's side of it);
//   - a user's leased usage events paid from leases (those without
//     amounts) cost exactly what its leases kept: what
//     they took less what their ends gave back or forfeited. A gateway ends
//     a lease with its own count of the use, the sweeper with the count of
//     the last flush, and each flush appends the events of that count, so
//     this holds even for a killed gateway. Not checked in a cycle whose
//     Redis lost writes (an appended flush or a take may be gone);
//   - a leased 2xx without a usage event (checkRequests lets it pass only
//     when its gateway was killed after it started) was admitted after the
//     last flush of a lease the sweeper ended: per user, at most what those
//     leases gave back pays for (1 credit each);
//   - the sweeper ends only leases of killed gateways: in a cycle that
//     killed none and lost no Redis writes, a swept lease was ended under a
//     live gateway, which may then admit from credits that went back;
//   - what the ledger charged a user (its usage events' cost, less voids) never
//     exceeds what it had: its credits less what a negative adjustment
//     removed, and for the pool's users together, their credits and the
//     pool. Not checked when Redis lost writes (the
//     charges of the lost second are the documented loss).
func (w *world) checkCreditLeases(c *cycle, events []*ledgerEvent) {
	byID := map[string]*ledgerEvent{}
	for _, e := range events {
		byID[e.id] = e
	}
	per := map[int64]*userLeases{}
	of := func(uid int64) *userLeases {
		if per[uid] == nil {
			per[uid] = &userLeases{}
		}
		return per[uid]
	}
	spent := map[int64]int64{} // user id → cost of its usage events, less voids
	for _, e := range events {
		switch e.kind {
		case metering.KindLease:
			l := of(e.userID)
			l.taken++
			l.charged -= e.total() // a lease's deltas are what it took
			if byID[e.id+":e"] == nil {
				l.unendedLeases = append(l.unendedLeases, e.id)
			}
		case metering.KindLeaseEnd:
			l := of(e.userID)
			l.ended++
			back := e.total() + e.forfeited
			l.charged -= back
			if e.note == sweptLeaseNote {
				l.swept++
				l.sweptUnused += back
			}
		case "usage", metering.KindVoid: // a void's cost is negative: a charge undone
			spent[e.userID] += e.cost
			// A leased request paid from a lease carries no amounts (the
			// lease took them); one whose lease held it alone (a low
			// balance, a pool paying) is a plain charge with its amounts.
			if e.kind == "usage" && leasedLabel(e.request) && e.total() == 0 {
				of(e.userID).usageCost += e.cost
			}
		}
	}
	lostWrites := !c.lostAfter.IsZero()
	var poolHad, poolSpent int64
	for _, u := range c.users {
		l := of(u.id)
		c.stats.leases += l.taken
		c.stats.sweptLeases += l.swept
		for _, id := range l.unendedLeases {
			c.violate("credit leases ended", fmt.Sprintf("user %s: lease %s has no lease_end in the ledger", u.name, id))
		}
		if lostWrites && l.usageCost != l.charged {
			// A lost take or flush: the documented loss of the lost second.
			c.note("user %s: with Redis's lost writes, leased usage events cost %s, the leases kept %s",
				u.name, credits(l.usageCost), credits(l.charged))
		}
		if !lostWrites && l.usageCost != l.charged {
			c.violate("leased usage is what the leases kept", fmt.Sprintf(
				"user %s: %d leases (%d ended, %d by the sweeper) kept %s, its leased usage events cost %s",
				u.name, l.taken, l.ended, l.swept, credits(l.charged), credits(l.usageCost)))
		}
		if n := c.leasedUncharged[u]; n > 0 {
			c.stats.leasedUncharged += n
			switch {
			case l.swept == 0:
				c.violate("leased 2xx charged once", fmt.Sprintf(
					"user %s: %d leased 2xx uncharged on a killed gateway, but no lease of the user was ended by the sweeper", u.name, n))
			case metering.Credits(n)*metering.Micro > metering.Credits(l.sweptUnused):
				c.violate("leased 2xx charged once", fmt.Sprintf(
					"user %s: %d leased 2xx uncharged on a killed gateway, more than the %d swept leases gave back (%s)",
					u.name, n, l.swept, credits(l.sweptUnused)))
			}
		}
		if l.swept > 0 && len(c.kills) == 0 && !lostWrites {
			c.violate("only a dead gateway's leases are swept", fmt.Sprintf(
				"user %s: %d leases ended by the sweeper in a cycle that killed no gateway", u.name, l.swept))
		}
		if lostWrites {
			continue
		}
		had := int64(u.credits - u.removed)
		if u.project != "" {
			poolHad += had
			poolSpent += spent[u.id]
		} else if spent[u.id] > had {
			c.violate("no overdraft", fmt.Sprintf("user %s had %s (%s removed), the ledger charged it %s",
				u.name, credits(had), u.removed, credits(spent[u.id])))
		}
	}
	if !lostWrites && poolSpent > poolHad+int64(c.pool) {
		c.violate("no overdraft", fmt.Sprintf("the users of %s had %s and the pool %s, the ledger charged them %s",
			c.project, credits(poolHad), credits(int64(c.pool)), credits(poolSpent)))
	}
}
