//go:build faults

package faults

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// Revocation: once an admin call that takes a user's access or credits
// away has returned, every gateway acts on it from its next request on,
// leased route included (the call recalls the user's credit leases from
// every live gateway before it returns). Each cycle, after the service
// recovered from the fault and with the load still running, the rich user
// (which holds credit leases on every gateway by then) is, by the cycle's
// seed, one of:
//
//	deactivate  POST /users/{u}/deactivate: its key is refused everywhere
//	rotate      POST /users/{u}/key/rotate: the old key, which the load
//	            goes on using, is refused everywhere
//	adjust      POST /users/{u}/credits with a negative delta taking every
//	            awarded credit it has: no gateway admits it beyond what is
//	            left (the credit-lease and overdraft checks, with the
//	            removal counted)
//
// and the requests started afterwards are checked on every gateway.
var revocations = []string{"deactivate", "rotate", "adjust"}

// revokedRequests is how many of the revoked user's requests to see
// started after the revocation, and on every gateway at least one leased
// and one not leased, before the load stops; not seeing them within
// revokeWait is reported, not a violation.
const (
	revokedRequests = 12
	revokeWait      = 30 * time.Second
)

// revoke takes the cycle's rich user's access or credits away (by the
// cycle's seed) and remembers when the admin call returned, then waits
// for its requests after that on every gateway. Nothing waits for 2xx
// answers after it (the other users may have run out by now).
func (w *world) revoke(c *cycle) {
	u := c.users[0]
	how := revocations[c.rng.Intn(len(revocations))]
	var err error
	switch how {
	case "deactivate":
		_, err = w.admin("POST", "/users/"+u.name+"/deactivate", nil, nil)
	case "rotate":
		// The new key is not given to the load: its requests keep the old.
		_, err = w.admin("POST", "/users/"+u.name+"/key/rotate", nil, nil)
	case "adjust":
		err = w.removeCredits(u)
	}
	if err != nil {
		c.violate("revocation", fmt.Sprintf("%s %s after the service recovered: %v", how, u.name, err))
		return
	}
	c.revoked, c.revokedHow, c.revokedAt = u, how, time.Now()
	after := func(r *record) bool { return r.user == u && r.start.After(c.revokedAt) }
	err = waitFor(fmt.Sprintf("%d requests of %s after the revocation, on every gateway leased and not", revokedRequests, u.name), revokeWait, func() (bool, string) {
		missing := c.load.missingRoutes(after)
		n := c.load.count(after)
		return n >= revokedRequests && len(missing) == 0, fmt.Sprintf("%d so far, none yet: %s", n, strings.Join(missing, ", "))
	})
	if err != nil {
		c.note("%v", err)
	}
	what := map[string]string{"deactivate": "deactivated", "rotate": "key rotated", "adjust": fmt.Sprintf("%s awarded credits removed", u.removed)}
	c.note("%s %s with the load running", u.name, what[how])
}

// missingRoutes names the gateway and route pairs (leased or not) with no
// request matching yet.
func (l *load) missingRoutes(match func(*record) bool) []string {
	var missing []string
	for i := range gatewayNames {
		for _, leased := range []bool{false, true} {
			if l.count(func(r *record) bool { return match(r) && r.gw == i && (r.kind == kindLeased) == leased }) == 0 {
				what := "not leased"
				if leased {
					what = "leased"
				}
				missing = append(missing, gatewayNames[i]+" "+what)
			}
		}
	}
	return missing
}

// removeCredits takes every awarded credit u has away with negative
// adjustments: the balance read, then removed; a charge in between makes
// the removal too large (409), and credits its recall brought back from
// leases are left over, so it goes on until an answer shows none left (a
// few rounds at most).
func (w *world) removeCredits(u *cycleUser) error {
	type view struct {
		Awarded metering.Credits `json:"awarded"`
	}
	var v view
	if _, err := w.admin("GET", "/users/"+u.name, nil, &v); err != nil {
		return err
	}
	for round := 0; v.Awarded > 0; round++ {
		if round == 10 {
			return fmt.Errorf("%s still has %s awarded credits after 10 removals", u.name, v.Awarded)
		}
		delta := 0 - v.Awarded
		status, err := w.admin("POST", "/users/"+u.name+"/credits", map[string]any{"delta": delta, "note": "fault suite: revocation"}, &v)
		switch {
		case status == http.StatusConflict: // charged meanwhile: read again
			if _, err := w.admin("GET", "/users/"+u.name, nil, &v); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			u.removed -= delta
		}
	}
	return nil
}

// checkRevocation: no request of a deactivated user, or with a rotated
// key, that started after the admin call returned was answered 2xx or
// charged, on any gateway. (A removal of credits is held to the
// credit-lease and overdraft checks instead: the user may still have
// credits, from refunds or the pool.)
func (w *world) checkRevocation(c *cycle, byN map[int64][]*ledgerEvent) {
	if c.revoked == nil {
		return
	}
	var after []*record
	for _, r := range c.records {
		if r.user == c.revoked && r.start.After(c.revokedAt) {
			after = append(after, r)
		}
	}
	c.stats.revokedTried = len(after)
	if c.revokedHow == "adjust" {
		return
	}
	for _, r := range after {
		if r.outcome == answered && r.status/100 == 2 {
			c.violate("revocation", fmt.Sprintf("%s: answered %d %s after the %s returned", r, r.status,
				r.start.Sub(c.revokedAt).Round(time.Millisecond), c.revokedHow))
			continue
		}
		for _, e := range byN[r.n] {
			if e.kind == "usage" && e.cost != 0 {
				c.violate("revocation", fmt.Sprintf("%s: charged (%s %s) though started after the %s returned", r, e.kind, e.id, c.revokedHow))
			}
		}
	}
}
