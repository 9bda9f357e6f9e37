//go:build faults

package faults

import (
	"fmt"
	"time"
)

// Revocation: once a deactivation's admin call has returned, the user's
// key is refused on every gateway, leased route included (the recall ends
// every gateway's leases of the user before the call returns). Each cycle
// deactivates one user after the service recovered from the fault, with
// the load still running, and checks the requests started afterwards.

// revokedRequests is how many of the revoked user's requests (leased or
// not) to see started after the revocation before the load stops; not
// seeing them within revokeWait is reported, not a violation.
const (
	revokedRequests = 12
	revokeWait      = 30 * time.Second
)

// revoke deactivates the cycle's rich user, which never runs out and so,
// under the load, holds credit leases on both gateways at the time, and
// remembers when the admin call returned. Nothing waits for 2xx answers
// after it (the other users may have run out by now).
func (w *world) revoke(c *cycle) {
	u := c.users[0]
	if _, err := w.admin("POST", "/users/"+u.name+"/deactivate", nil, nil); err != nil {
		c.violate("revocation", fmt.Sprintf("deactivating %s after the service recovered: %v", u.name, err))
		return
	}
	c.revoked, c.revokedAt = u, time.Now()
	err := waitFor(fmt.Sprintf("%d requests of %s after its deactivation", revokedRequests, u.name), revokeWait, func() (bool, string) {
		n := c.load.count(func(r *record) bool { return r.user == u && r.start.After(c.revokedAt) })
		return n >= revokedRequests, fmt.Sprintf("%d so far", n)
	})
	if err != nil {
		c.note("%v", err)
	}
	c.note("%s deactivated with the load running", u.name)
}

// checkRevocation: no request of the revoked user that started after the
// deactivation returned was answered 2xx or charged.
func (w *world) checkRevocation(c *cycle, byN map[int64][]*ledgerEvent) {
	if c.revoked == nil {
		return
	}
	for _, r := range c.records {
		if r.user != c.revoked || !r.start.After(c.revokedAt) {
			continue
		}
		c.stats.revokedTried++
		if r.outcome == answered && r.status/100 == 2 {
			c.violate("revocation", fmt.Sprintf("%s: answered %d %s after the deactivation returned", r, r.status,
				r.start.Sub(c.revokedAt).Round(time.Millisecond)))
			continue
		}
		for _, e := range byN[r.n] {
			if e.kind == "usage" && e.cost != 0 {
				c.violate("revocation", fmt.Sprintf("%s: charged (%s %s) though started after the deactivation returned", r, e.kind, e.id))
			}
		}
	}
}
