//go:build faults

package faults

import (
	"fmt"
	"strings"
	"time"
)

// Configuration reloads under load (`tollgate reload`, Caddy's reload):
// Caddy provisions the new configuration's module instances, starts them,
// then stops and cleans up the old ones while their requests may still be
// running. The old instances' credit leases must be ended with the use
// they admitted, and their in-flight requests finish and be charged once,
// by the configuration that admitted them.

// reload is one `tollgate reload` of gateway gw: sent when the command
// started, done when it returned, to the routes it switched to.
type reload struct {
	gw         int
	sent, done time.Time
	to         routes
	force      bool
}

// reloadSteps is what the fault does to one gateway, in order: switch the
// fixed-cost route's cost and the leased route's credit leases off, switch
// them back, then reload the unchanged file by force (new module
// instances, nothing else different).
var reloadSteps = []struct {
	to    routes
	force bool
}{{reloadRoutes, false}, {baseRoutes, false}, {baseRoutes, true}}

// reloadBusy is how many requests the reloaded gateway must be answering
// at the upstream when each reload is sent, so that some are in flight
// across it.
const reloadBusy = 3

// gatewayReload reloads one gateway three times (reloadSteps) while the
// load runs, each time with requests of it in flight.
func gatewayReload(w *world, c *cycle) error {
	victim := c.rng.Intn(len(w.gws))
	g := w.gws[victim]
	var did []string
	for _, step := range reloadSteps {
		busy := 0
		err := waitFor(fmt.Sprintf("%d requests in flight on %s", reloadBusy, g.name), time.Minute, func() (bool, string) {
			busy = w.up.activeOn(g.name, upFixed) + w.up.activeOn(g.name, upChat)
			return busy >= reloadBusy, fmt.Sprintf("%d now", busy)
		})
		if err != nil {
			c.note("%v", err)
		}
		if err := w.writeConfig(g, step.to); err != nil {
			return err
		}
		r := reload{gw: victim, sent: time.Now(), to: step.to, force: step.force}
		err = g.reload(step.force)
		r.done = time.Now()
		c.reloads = append(c.reloads, r)
		if err != nil {
			// Which configuration runs now is unknown: put the base back
			// (a failure here is reported with the first), so the rest of
			// the run does not check this gateway against the wrong one.
			if werr := w.writeConfig(g, baseRoutes); werr == nil {
				_ = g.reload(true)
			}
			return err
		}
		how := ""
		if step.force {
			how = " (forced, unchanged)"
		}
		did = append(did, fmt.Sprintf("to [%s]%s with %d requests at the upstream, in %s",
			step.to, how, busy, r.done.Sub(r.sent).Round(time.Millisecond)))
		c.pause(time.Second, 3*time.Second)
	}
	c.note("%s reloaded %s", g.name, strings.Join(did, "; "))
	return nil
}

// fixedCosts is what a fixed-cost request may have been charged, in
// micro-credits: the cost of every configuration its gateway ran while it
// was under way (admitted at some moment between its start and its end).
// A configuration runs from the moment its reload is sent (the new one
// may serve before the command returns) until the next reload returns.
func (c *cycle) fixedCosts(r *record) []int64 {
	if r.kind == kindLeased {
		return []int64{1_000_000}
	}
	var mine []reload
	for _, rl := range c.reloads {
		if rl.gw == r.gw {
			mine = append(mine, rl)
		}
	}
	var costs []int64
	add := func(rt routes, from, until time.Time) {
		if (!until.IsZero() && until.Before(r.start)) || (!from.IsZero() && from.After(r.end)) {
			return
		}
		cost := rt.fixedCost * 1_000_000
		for _, have := range costs {
			if have == cost {
				return
			}
		}
		costs = append(costs, cost)
	}
	from, rt := time.Time{}, baseRoutes
	for _, rl := range mine {
		add(rt, from, rl.done)
		from, rt = rl.sent, rl.to
	}
	add(rt, from, time.Time{})
	return costs
}

// reloadedDuring reports whether r's gateway was reloaded while r ran.
func (c *cycle) reloadedDuring(r *record) bool {
	for _, rl := range c.reloads {
		if rl.gw == r.gw && !rl.sent.After(r.end) && !rl.done.Before(r.start) {
			return true
		}
	}
	return false
}
