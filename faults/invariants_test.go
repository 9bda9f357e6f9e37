//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// quiet waits, with the load stopped and every process up, until the
// system has nothing left to do: every reservation settled (the sweeper
// settles those of killed gateways once their lease ends) and every event
// in Postgres. Not getting there is itself a violation.
func (w *world) quiet(c *cycle) {
	err := waitFor("every reservation settled", reservationLease+time.Minute, func() (bool, string) {
		ctx, cancel := ctxTimeout(5 * time.Second)
		defer cancel()
		n, err := w.shardsZCard(ctx, (*metering.ShardKeys).Leases)
		if err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%d reservations open", n)
	})
	if err != nil {
		c.violate("reservations settled", err.Error())
	}
	// Idle credit leases end after 2s; a killed gateway's are ended by the
	// sweeper once their life and grace have passed.
	err = waitFor("every credit lease ended", creditLeaseLife+creditLeaseGrace+time.Minute, func() (bool, string) {
		ctx, cancel := ctxTimeout(5 * time.Second)
		defer cancel()
		n, err := w.shardsZCard(ctx, (*metering.ShardKeys).CreditLeases)
		if err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%d credit leases open", n)
	})
	if err != nil {
		c.violate("credit leases ended", err.Error())
	}
	err = w.waitDrained()
	if err != nil {
		c.violate("drain", err.Error())
	}
}

// check compares what every client saw with the ledger, and the balances
// of Redis, Postgres and the ledger with each other.
func (w *world) check(c *cycle) {
	names := make([]string, len(c.users))
	for i, u := range c.users {
		names[i] = u.name
	}
	// Postgres may have restarted: its first queries can meet dead
	// connections, so each read is retried for a while.
	var rows map[string]*userRow
	w.retry(c, "reading users", func() (err error) { rows, err = w.userRows(names); return err })
	ids := make([]int64, 0, len(rows))
	for _, u := range c.users {
		if r := rows[u.name]; r != nil {
			u.id, u.projectID = r.id, r.projectID
			ids = append(ids, r.id)
		}
	}
	var pool int64
	w.retry(c, "reading the project", func() (err error) { c.projectID, pool, err = w.projectRow(c.project); return err })
	var events []*ledgerEvent
	w.retry(c, "reading the ledger", func() (err error) { events, err = w.ledger(ids, c.projectID); return err })
	byID := map[string]*ledgerEvent{}
	byN := map[int64][]*ledgerEvent{}
	for _, e := range events {
		byID[e.id] = e
		if e.kind != "usage" && e.kind != "hold" && e.kind != "void" {
			continue
		}
		n, ok := e.requestN()
		if !ok {
			c.violate("every charge has its request", fmt.Sprintf("%s event %s with request label %q", e.kind, e.id, e.request))
			continue
		}
		byN[n] = append(byN[n], e)
	}
	w.checkRequests(c, byID, byN)
	w.checkInFlight(c, byID, byN)
	w.checkBalances(c, rows, events, pool)
	w.checkCreditLeases(c, events)
	w.checkRevocation(c, byN)
	w.checkDeadLetters(c)
}

// retry runs read until it succeeds, for up to a minute; then the run
// cannot go on.
func (w *world) retry(c *cycle, what string, read func() error) {
	var last error
	if err := waitFor(what, time.Minute, func() (bool, string) {
		last = read()
		return last == nil, fmt.Sprint(last)
	}); err != nil {
		w.t.Fatalf("cycle %d: %v", c.index, err)
	}
}

func (c *cycle) recordByN() map[int64]*record {
	m := make(map[int64]*record, len(c.records))
	for _, r := range c.records {
		m[r.n] = r
	}
	return m
}

// refusal reports an answer that must not have cost anything: a bad key,
// no credits, a bad request, or metering unavailable (fail closed).
func refusal(r *record) bool {
	switch r.status {
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return true
	case http.StatusServiceUnavailable:
		return r.code == "metering_unavailable"
	}
	return false
}

// checkRequests: every request's ledger events match what its client saw.
//
//	2xx                        exactly one usage event (priced: settling its one hold);
//	                           none allowed only when answered after the point
//	                           a cut AOF kept (writes Redis lost, see lostAfter;
//	                           leased: up to lostUsageWindow before it),
//	                           or, leased, when its gateway was killed after it
//	                           started (checkCreditLeases bounds those)
//	401/402/400/413, 503 metering_unavailable: no event at all, or events
//	                           that net to nothing (a charge whose answer was
//	                           lost and that was undone: usage + void, or a
//	                           hold settled as a refund)
//	another answer (upstream failed): exactly one usage event; priced: charged 0
//	not sent (no connection)   no event
//	lost (error, cut, timeout) zero or one usage event, counted
func (w *world) checkRequests(c *cycle, byID map[string]*ledgerEvent, byN map[int64][]*ledgerEvent) {
	s := &c.stats
	s.statuses = map[int]int{}
	c.leasedUncharged = map[*cycleUser]int{}
	known := c.recordByN()
	for n, evs := range byN {
		if known[n] == nil {
			c.violate("every charge has its request", fmt.Sprintf("events for request %d, which this cycle never sent: %s", n, evs[0].request))
		}
	}
	for _, r := range c.records {
		s.requests++
		evs := byN[r.n]
		var usage, holds []*ledgerEvent
		for _, e := range evs {
			switch e.kind {
			case "usage":
				usage = append(usage, e)
			case "hold":
				holds = append(holds, e)
			}
		}
		for _, h := range holds {
			if byID[h.id+":s"] == nil {
				c.violate("every reservation settled", fmt.Sprintf("%s: hold %s (%s) has no settlement in the ledger", r, h.id, credits(-h.total())))
			}
		}
		if r.kind.fixedCost() && len(holds) > 0 {
			c.violate("charged once", fmt.Sprintf("%s: a fixed-cost request with %d holds", r, len(holds)))
		}
		if len(usage) > 1 {
			c.violate("charged once", fmt.Sprintf("%s: %d usage events: %s", r, len(usage), eventList(usage)))
		}
		if len(usage) == 1 && !r.kind.fixedCost() {
			w.checkPrice(c, r, usage[0])
		}
		switch {
		case r.outcome == notSent:
			s.notSent++
			if len(evs) > 0 {
				c.violate("refused means not charged", fmt.Sprintf("%s: never reached a gateway, yet %s", r, eventList(evs)))
			}
		case r.outcome == lost:
			s.lost++
			if len(usage) > 0 {
				s.lostCharged++
			}
		case r.status/100 == 2:
			s.ok++
			s.statuses[r.status]++
			if r.kind == kindLeased {
				s.leasedOK++
			}
			if len(usage) == 0 {
				if r.kind == kindLeased && c.killedDuring(r) {
					// Admitted from a lease, perhaps after its last flush,
					// by a gateway killed since: checkCreditLeases holds
					// these to the leases the sweeper ended.
					c.leasedUncharged[r.user]++
					continue
				}
				if !c.lostAfter.IsZero() && r.end.After(c.lostAfter.Add(-lostUsageWindow(r.kind))) {
					s.okLostWithRedis++ // charged in the writes Redis lost
					continue
				}
				c.violate("2xx charged once", fmt.Sprintf("%s: no usage event in the ledger%s", r, holdNote(holds)))
				continue
			}
			w.checkUnits(c, r, usage[0])
		case refusal(r):
			s.refused++
			s.statuses[r.status]++
			switch {
			case len(evs) == 0:
			case netZero(evs):
				s.refusedUndone++
			default:
				c.violate("refused means not charged", fmt.Sprintf("%s: %s", r, eventList(evs)))
			}
		default:
			s.other++
			s.statuses[r.status]++
			if len(usage) != 1 {
				c.violate("answered requests charged once", fmt.Sprintf("%s: %d usage events, want 1", r, len(usage)))
			} else if !r.kind.fixedCost() && usage[0].cost != 0 && r.status >= 500 {
				c.violate("a failed upstream is refunded", fmt.Sprintf("%s: charged %s", r, credits(usage[0].cost)))
			}
		}
	}
}

// lostUsageWindow is how long before the point a cut AOF kept a 2xx may
// have been answered and still have its usage event in the lost writes:
// none for a charge, whose event is appended with it; for a leased
// request, whose event the lease's next flush appends (every 100ms), ten
// flush intervals, so a flush the loaded machine delays is still covered.
func lostUsageWindow(k reqKind) time.Duration {
	if k == kindLeased {
		return time.Second
	}
	return 0
}

// netZero reports events that together change no balance and cost
// nothing: a charge undone after its answer was lost.
func netZero(evs []*ledgerEvent) bool {
	var cost, moved int64
	for _, e := range evs {
		cost += e.cost
		moved += e.dAllowance + e.dPool + e.dAwarded + e.dPurchased
	}
	return cost == 0 && moved == 0
}

// checkUnits: a priced 2xx that its handler settled is charged the usage
// the upstream reported. (One the sweeper settled, because the handler
// could not reach Redis, is charged its estimate by policy: counted.)
func (w *world) checkUnits(c *cycle, r *record, u *ledgerEvent) {
	if r.kind.fixedCost() {
		costs := c.fixedCosts(r)
		if !slices.Contains(costs, u.cost) {
			c.violate("2xx charged once", fmt.Sprintf("%s: charged %s, the route costs %s", r, credits(u.cost), costList(costs)))
		}
		return
	}
	if u.upstreamStatus == nil {
		c.stats.sweptOK++
		if c.reloadedDuring(r) && len(c.kills) == 0 && c.lostAfter.IsZero() {
			// Redis stayed up and nothing was killed: the handler of the
			// configuration that admitted it had to settle it itself.
			c.violate("a reload lets requests finish", fmt.Sprintf("%s: settled by the sweeper, not its handler, across a reload of %s", r, r.gwName))
		}
		return
	}
	seen := w.up.report(r.n)
	if seen == nil || !seen.complete {
		c.violate("2xx charged once", fmt.Sprintf("%s: a 2xx the upstream never answered whole", r))
		return
	}
	in, out := int64(-1), int64(-1)
	if u.inputUnits != nil {
		in = *u.inputUnits
	}
	if u.outputUnits != nil {
		out = *u.outputUnits
	}
	if in != seen.prompt || out != seen.completion {
		c.violate("charged what was used", fmt.Sprintf("%s: ledger units in %d out %d, upstream reported %d and %d",
			r, in, out, seen.prompt, seen.completion))
	}
}

// checkInFlight: once quiet, no user has a request in flight, except
// those a killed gateway was serving (they end with their lease). A
// member is a reservation's event id, or a fixed-cost charge's event id
// followed by "|" and what it took.
func (w *world) checkInFlight(c *cycle, byID map[string]*ledgerEvent, byN map[int64][]*ledgerEvent) {
	records := c.recordByN()
	var unexpected []string
	err := waitFor("no request left in flight", 15*time.Second, func() (bool, string) {
		unexpected, c.stats.inFlightKilled = nil, 0
		for _, u := range c.users {
			members, err := w.inFlight(u.projectID, u.id)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range members {
				id, _, _ := strings.Cut(m, "|")
				e := byID[id]
				if e == nil {
					unexpected = append(unexpected, fmt.Sprintf("user %s: member %s has no event in the ledger", u.name, m))
					continue
				}
				n, _ := e.requestN()
				r := records[n]
				if r != nil && c.killedDuring(r) {
					c.stats.inFlightKilled++
					continue
				}
				what := e.request
				if r != nil {
					what = r.String()
				}
				unexpected = append(unexpected, fmt.Sprintf("user %s: %s", u.name, what))
			}
		}
		return len(unexpected) == 0, fmt.Sprintf("%d left", len(unexpected))
	})
	if err != nil {
		for _, u := range unexpected {
			c.violate("in_flight back to 0", u)
		}
	}
}

// killedDuring reports whether r's gateway was killed after r started.
func (c *cycle) killedDuring(r *record) bool {
	for _, k := range c.kills {
		if k.gw == r.gw && !k.at.Before(r.start) {
			return true
		}
	}
	return false
}

// checkBalances: after the drain Redis equals Postgres for every user and
// the pool; Postgres equals the sum of the ledger's events; and no balance
// is below zero, i.e. nobody was admitted beyond what they had.
func (w *world) checkBalances(c *cycle, rows map[string]*userRow, events []*ledgerEvent, pool int64) {
	sums := map[int64]*[2]int64{} // user id → awarded, purchased
	var poolSum int64
	for _, e := range events {
		if e.userID != 0 {
			s := sums[e.userID]
			if s == nil {
				s = &[2]int64{}
				sums[e.userID] = s
			}
			s[0] += e.dAwarded
			s[1] += e.dPurchased
		}
		if e.projectID == c.projectID {
			poolSum += e.dPool
		}
	}
	for _, u := range c.users {
		row := rows[u.name]
		if row == nil {
			c.violate("balances", fmt.Sprintf("user %s missing from Postgres", u.name))
			continue
		}
		s := sums[row.id]
		if s == nil {
			s = &[2]int64{}
		}
		pg := row.fields
		if pg[0] != s[0] || pg[1] != s[1] {
			c.violate("Postgres equals its ledger", fmt.Sprintf("user %s: Postgres awarded %s purchased %s, its events sum to %s and %s",
				u.name, credits(pg[0]), credits(pg[1]), credits(s[0]), credits(s[1])))
		}
		if pg[0] < 0 || pg[1] < 0 {
			c.violate("never beyond the balance", fmt.Sprintf("user %s (had %s): Postgres awarded %s purchased %s",
				u.name, credits(int64(u.credits)), credits(pg[0]), credits(pg[1])))
		}
		rf, loaded, err := w.redisUser(row.projectID, row.id)
		if err != nil {
			c.violate("balances", fmt.Sprintf("user %s: reading Redis: %v", u.name, err))
			continue
		}
		if loaded && rf != pg {
			c.violate("Redis equals Postgres", fmt.Sprintf("user %s: Redis [aw pr a ap pu gm] = %v, Postgres = %v (Redis awarded minus Postgres's: %s)",
				u.name, rf, pg, credits(rf[0]-pg[0])))
		}
		if loaded && (rf[0] < 0 || rf[1] < 0) {
			c.violate("never beyond the balance", fmt.Sprintf("user %s: Redis awarded %s purchased %s", u.name, credits(rf[0]), credits(rf[1])))
		}
	}
	if pool != poolSum {
		c.violate("Postgres equals its ledger", fmt.Sprintf("pool %s: Postgres %s, its events sum to %s", c.project, credits(pool), credits(poolSum)))
	}
	if pool < 0 {
		c.violate("never beyond the balance", fmt.Sprintf("pool %s: Postgres %s", c.project, credits(pool)))
	}
	rp, loaded, err := w.redisPool(c.projectID)
	if err != nil {
		c.violate("balances", fmt.Sprintf("pool %s: reading Redis: %v", c.project, err))
	} else if loaded && rp != pool {
		c.violate("Redis equals Postgres", fmt.Sprintf("pool %s: Redis %s, Postgres %s", c.project, credits(rp), credits(pool)))
	}
}

// checkDeadLetters: the reconciler set no event aside as malformed.
func (w *world) checkDeadLetters(c *cycle) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every shard's dead letters, counted together.
	var n int64
	var err error
	for _, sh := range w.keys.Shards() {
		var l int64
		if l, err = w.redis.client.XLen(ctx, sh.DeadLetters()).Result(); err != nil {
			break
		}
		n += l
	}
	if err == nil && n > int64(w.deadSeen) {
		c.violate("no malformed events", fmt.Sprintf("%d new entries in the dead-letter stream", n-int64(w.deadSeen)))
		w.deadSeen = int(n)
	}
}

func (e *ledgerEvent) total() int64 { return e.dAllowance + e.dPool + e.dAwarded + e.dPurchased }

func eventList(evs []*ledgerEvent) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%s %s cost %s", e.kind, e.id, credits(e.cost)))
	}
	return strings.Join(parts, "; ")
}

func holdNote(holds []*ledgerEvent) string {
	if len(holds) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d holds: %s)", len(holds), eventList(holds))
}

// costList formats costs in micro-credits as "1 or 2".
func costList(costs []int64) string {
	var parts []string
	for _, c := range costs {
		parts = append(parts, credits(c))
	}
	return strings.Join(parts, " or ")
}

// credits formats micro-credits as a decimal.
func credits(micro int64) string { return metering.Credits(micro).String() }

// waitDrained waits until every shard's stream is empty and nothing is
// pending: the ledger holds every event.
func (w *world) waitDrained() error {
	return waitFor("the event stream drained into Postgres", 3*time.Minute, func() (bool, string) {
		length, pending, err := w.streamState()
		if err != nil {
			return false, err.Error()
		}
		return length == 0 && pending == 0, fmt.Sprintf("%d events in the stream, %d of them pending", length, pending)
	})
}
