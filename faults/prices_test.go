//go:build faults

package faults

import (
	"fmt"
	"slices"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// Price changes under load. The product promises (docs/architecture.md,
// "Prices") that a price change applies to the next request everywhere:
// the admin call returns once the new price version is announced in
// Redis, and every reservation checks its gateway's price table against
// that version (stale: the gateway reloads and prices again). A
// reservation is charged at the price it was made with. So a priced
// request that started after the change returned is charged at the new
// price on every gateway, one that ended before it was sent at the old
// one, and one under way meanwhile at either (never anything else).

// priceChange is one change of the chat model's price during a cycle.
type priceChange struct {
	from, to   metering.Price
	sent, done time.Time
}

// Rates the change picks from (credits per million tokens): the first pair
// is the price the world starts with, 0.01 credit an input token and 0.04
// an output token.
var (
	inputRates  = []metering.Credits{10000 * metering.Micro, 20000 * metering.Micro, 5000 * metering.Micro}
	outputRates = []metering.Credits{40000 * metering.Micro, 80000 * metering.Micro, 25000 * metering.Micro}
)

// priceChangeWait bounds each wait of the step; not seeing what it waits
// for is reported, not a violation (the load is random).
const priceChangeWait = 30 * time.Second

// changePrice puts a new price for the chat model through the admin API
// while priced requests are being answered, then lets every gateway answer
// priced requests started after it returned.
func (w *world) changePrice(c *cycle) {
	to := w.price
	for to.InputPerMillion == w.price.InputPerMillion && to.OutputPerMillion == w.price.OutputPerMillion {
		to.InputPerMillion = inputRates[c.rng.Intn(len(inputRates))]
		to.OutputPerMillion = outputRates[c.rng.Intn(len(outputRates))]
	}
	// Priced requests are answered at once by now (the fault's mix is
	// over), so one in flight anywhere is what to wait for; the load
	// spreads the rest over every gateway.
	if err := waitFor("a priced request in flight", priceChangeWait/3, func() (bool, string) {
		n := 0
		for _, g := range w.gws {
			n += w.up.activeOn(g.name, upChat)
		}
		return n > 0, ""
	}); err != nil {
		c.note("%v", err)
	}
	ch := &priceChange{from: w.price, sent: time.Now()}
	err := w.putPrice(to)
	ch.done = time.Now()
	if err != nil {
		c.violate("price change", fmt.Sprintf("putting the price %s: %v", priceString(to), err))
		return
	}
	ch.to, w.price, c.priceChange = to, to, ch
	err = waitFor("2 priced 2xx started after the price change on every gateway", priceChangeWait, func() (bool, string) {
		for i, g := range w.gws {
			n := c.load.count(func(r *record) bool {
				return r.gw == i && !r.kind.fixedCost() && r.start.After(ch.done) && r.outcome == answered && r.status/100 == 2
			})
			if n < 2 {
				return false, fmt.Sprintf("%d on %s", n, g.name)
			}
		}
		return true, ""
	})
	if err != nil {
		c.note("%v", err)
	}
	c.note("price of %s changed from %s to %s under load (the admin call took %s)", chatModel,
		priceString(ch.from), priceString(ch.to), ch.done.Sub(ch.sent).Round(time.Millisecond))
}

func priceString(p metering.Price) string {
	return fmt.Sprintf("%s/%s per million tokens in/out", p.InputPerMillion, p.OutputPerMillion)
}

// prices is what a priced request may have been charged at: the price of
// the cycle, or around a change, the old, the new or either by when the
// request ran.
func (c *cycle) prices(r *record, current metering.Price) []metering.Price {
	ch := c.priceChange
	switch {
	case ch == nil:
		return []metering.Price{current}
	case r.start.After(ch.done):
		return []metering.Price{ch.to}
	case r.end.Before(ch.sent):
		return []metering.Price{ch.from}
	}
	return []metering.Price{ch.from, ch.to}
}

// checkPrice: a priced request its handler settled was charged what its
// reported units cost at a price it may have been reserved at (prices).
// The upstream's units are checked against the event by checkUnits; the
// sweeper's settlements charge the estimate by policy and are not priced
// again here.
func (w *world) checkPrice(c *cycle, r *record, u *ledgerEvent) {
	if u.upstreamStatus == nil || u.inputUnits == nil || u.outputUnits == nil {
		return
	}
	units := metering.Units{InputTokens: *u.inputUnits, OutputTokens: *u.outputUnits}
	allowed := c.prices(r, w.price)
	var costs []int64
	for _, p := range allowed {
		costs = append(costs, int64(p.Cost(units)))
	}
	if !slices.Contains(costs, u.cost) {
		c.violate("charged at its price", fmt.Sprintf("%s: %d+%d tokens charged %s, at its price %s", r,
			units.InputTokens, units.OutputTokens, credits(u.cost), costList(costs)))
		return
	}
	if c.priceChange != nil && u.cost == int64(c.priceChange.to.Cost(units)) {
		c.stats.newPrice++
	}
}
