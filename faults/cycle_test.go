//go:build faults

package faults

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// cycle is one fault under load, and what the checks found afterwards.
type cycle struct {
	index, of int
	fault     *fault
	seed      int64
	rng       *rand.Rand
	project   string
	projectID int64
	pool      metering.Credits // the pool's credits at the start
	users     []*cycleUser
	load      *load
	records   []*record
	kills     []kill
	reloads   []reload // configuration reloads of gateways (reload_test.go)
	// priceChange is the change of the chat model's price made under
	// load (prices_test.go); nil if it failed.
	priceChange *priceChange
	violations  []string
	took        time.Duration
	stats       stats
	// lostAfter, set when the cycle's fault cut Redis's AOF: writes made
	// after it may be gone (appendfsync everysec after an OS crash).
	lostAfter time.Time
	// leasedUncharged counts, per user, leased 2xx with no usage event
	// whose gateway was killed after they started (checkRequests).
	leasedUncharged map[*cycleUser]int
	// revoked is the user whose access or credits were taken away once
	// the service recovered, revokedHow how (revocations), and revokedAt
	// when the admin call returned (revocation_test.go).
	revoked    *cycleUser
	revokedHow string
	revokedAt  time.Time
	// xfers is the cycle's transfer users and transfers (transfers_test.go).
	xfers *transfers
}

type cycleUser struct {
	name, key string
	id        int64
	project   string
	projectID int64 // as Postgres had it at the last check (0: none); picks the user's Redis shard
	credits   metering.Credits
	removed   metering.Credits // taken away by the revocation's negative adjustments
}

// kill is a gateway SIGKILLed during the cycle: requests it had in flight
// may stay "in flight" until their lease ends.
type kill struct {
	gw int
	at time.Time
}

type planned struct {
	fault *fault
	seed  int64
}

// planCycles draws the run: every fault once in a shuffled order, then
// again, and so on, each cycle with its own seed. -faults.cycle replays one.
func planCycles(n int, seed int64, one, only, skip string) ([]planned, error) {
	if one != "" {
		name, s, ok := strings.Cut(one, ":")
		f := faultNamed(name)
		cs, err := strconv.ParseInt(s, 10, 64)
		if !ok || f == nil || err != nil {
			return nil, fmt.Errorf("-faults.cycle=%q: want <fault>:<seed>, faults: %s", one, faultNames(catalogue))
		}
		return []planned{{f, cs}}, nil
	}
	kinds := catalogue
	if only != "" {
		kinds = nil
		for _, name := range strings.Split(only, ",") {
			f := faultNamed(strings.TrimSpace(name))
			if f == nil {
				return nil, fmt.Errorf("-faults.only: no fault %q; faults: %s", name, faultNames(catalogue))
			}
			kinds = append(kinds, f)
		}
	}
	if skip != "" {
		var kept []*fault
		for _, f := range kinds {
			if !strings.Contains(","+skip+",", ","+f.name+",") {
				kept = append(kept, f)
			}
		}
		kinds = kept
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("-faults.only and -faults.skip leave no fault to draw")
	}
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	say("run seed %d (rerun the whole run with -faults.seed=%d -faults.cycles=%d); faults: %s", seed, seed, n, faultNames(kinds))
	rng := rand.New(rand.NewSource(seed))
	var plan []planned
	var order []*fault
	for i := range n {
		if i%len(kinds) == 0 {
			order = append([]*fault(nil), kinds...)
			rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		plan = append(plan, planned{order[i%len(kinds)], rng.Int63n(1_000_000_000)})
	}
	return plan, nil
}

func (c *cycle) note(format string, args ...any) {
	say("  cycle %d: %s", c.index, fmt.Sprintf(format, args...))
}

// violate records a broken invariant.
func (c *cycle) violate(invariant, detail string) {
	c.violations = append(c.violations, "["+invariant+"] "+detail)
}

// killed reports whether gateway i was killed during the cycle.
func (c *cycle) killed(i int) bool {
	for _, k := range c.kills {
		if k.gw == i {
			return true
		}
	}
	return false
}

// killGateway SIGKILLs gateway i and remembers when.
func (w *world) killGateway(c *cycle, i int) {
	w.gws[i].p.kill()
	c.kills = append(c.kills, kill{gw: i, at: time.Now()})
}

// pause waits a random time between lo and hi (drawn from the cycle's
// seed) while the load runs, and returns it. It only spaces out fault
// steps; nothing is asserted about what happens meanwhile.
func (c *cycle) pause(lo, hi time.Duration) time.Duration {
	d := lo
	if hi > lo {
		d += time.Duration(c.rng.Int63n(int64(hi - lo)))
	}
	time.Sleep(d)
	return d.Round(time.Millisecond)
}

// Load sizes. Every cycle has one user rich enough never to run out (so
// the service can be seen to recover) and others that run out at some
// point, so admission at the balance is tested under each fault.
const (
	warmOK     = 100 // 2xx answers before the fault
	recoveryOK = 40  // 2xx answers after it, proving the service is back
)

var smallCredits = []int64{3, 10, 30, 100, 300}

func (w *world) setupCycle(c *cycle) error {
	c.project = fmt.Sprintf("c%d", c.index)
	c.pool = metering.Credits(20+c.rng.Int63n(180)) * metering.Micro
	if err := w.createProject(c.project, c.pool); err != nil {
		return err
	}
	for i := range 6 {
		u := &cycleUser{name: fmt.Sprintf("c%d-u%d", c.index, i)}
		u.credits = metering.Credits(smallCredits[c.rng.Intn(len(smallCredits))]) * metering.Micro
		if i == 0 {
			u.credits = 100000 * metering.Micro
		}
		if i%2 == 0 {
			u.project = c.project
		}
		var err error
		if u.key, err = w.createUser(u.name, u.project, u.credits); err != nil {
			return err
		}
		c.users = append(c.users, u)
	}
	return w.setupTransfers(c)
}

func (w *world) runCycle(i, of int, p planned) *cycle {
	c := &cycle{index: i, of: of, fault: p.fault, seed: p.seed, rng: rand.New(rand.NewSource(p.seed))}
	start := time.Now()
	say("cycle %d/%d: %s (%s), seed %d; rerun: -faults.cycle=%s:%d", i, of, p.fault.name, p.fault.about, p.seed, p.fault.name, p.seed)
	if err := w.setupCycle(c); err != nil {
		w.t.Fatalf("cycle %d: setting up users: %v", i, err)
	}
	workers := 8 + c.rng.Intn(7)
	pace := time.Duration(20+c.rng.Intn(40)) * time.Millisecond
	c.load = w.startLoad(c, workers, pace, normalMix)
	w.startTransfers(c)
	c.note("%d clients, about %s between requests each, and transfers between %d users", workers, pace, transferUsers)
	if err := c.load.waitOK(warmOK, time.Minute, "2xx answers before the fault"); err != nil {
		c.violate("liveness", err.Error())
	}
	if p.fault.mix != nil {
		c.load.setMix(p.fault.mix(c.rng))
	}
	if err := p.fault.inject(w, c); err != nil {
		c.violate("fault injection", err.Error())
	}
	c.load.setMix(normalMix)
	if err := c.load.waitOK(recoveryOK, 90*time.Second, "2xx answers after the fault"); err != nil {
		c.violate("liveness", "the service did not recover: "+err.Error())
	}
	w.changePrice(c)
	w.revoke(c)
	c.xfers.stopTransfers()
	c.records = c.load.finish()
	w.up.endHangs()
	w.healAll(c)
	w.quiet(c)
	w.check(c)
	c.took = time.Since(start)
	c.report()
	c.xfers.report(c)
	return c
}

// stats counts a cycle's requests by what their clients saw.
type stats struct {
	requests, ok, refused, other, notSent, lost, lostCharged int
	statuses                                                 map[int]int
	sweptOK                                                  int // 2xx settled by the sweeper, not the handler
	inFlightKilled                                           int // left in flight by a killed gateway (allowed)
	refusedUndone                                            int // refused after a lost answer, the charge undone
	okLostWithRedis                                          int // 2xx answered in the writes Redis lost (allowed)
	leasedOK                                                 int // leased 2xx
	leasedUncharged                                          int // leased 2xx uncharged, their gateway killed (allowed, bounded)
	leases, sweptLeases                                      int // credit leases taken; ended by the sweeper
	revokedTried                                             int // the revoked user's requests started after the revocation
	newPrice                                                 int // priced requests charged at the price changed under load
}

func (c *cycle) report() {
	s := c.stats
	var st []string
	codes := make([]int, 0, len(s.statuses))
	for code := range s.statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	for _, code := range codes {
		st = append(st, fmt.Sprintf("%d×%d", code, s.statuses[code]))
	}
	c.note("%d requests: %d 2xx, %d refused, %d other answers [%s], %d not sent, %d lost (%d of them charged); %d 2xx settled by the sweeper; %d left in flight by killed gateways; %d refused and undone; %d 2xx uncharged in the writes Redis lost",
		s.requests, s.ok, s.refused, s.other, strings.Join(st, " "), s.notSent, s.lost, s.lostCharged, s.sweptOK, s.inFlightKilled,
		s.refusedUndone, s.okLostWithRedis)
	c.note("credit leases: %d taken, %d ended by the sweeper; %d leased 2xx, %d of them uncharged (gateway killed before its flush); %d requests after the revocation; %d priced requests charged at the new price",
		s.leases, s.sweptLeases, s.leasedOK, s.leasedUncharged, s.revokedTried, s.newPrice)
	shown := 0
	for _, r := range c.records {
		if r.outcome == lost && shown < 3 {
			c.note("  e.g. %s", r)
			shown++
		}
	}
	verdict := "all invariants hold"
	if len(c.violations) > 0 {
		verdict = fmt.Sprintf("%d VIOLATIONS", len(c.violations))
	}
	if len(c.violations) > 0 {
		by := map[string]int{}
		var kinds []string
		for _, v := range c.violations {
			kind := v[:strings.Index(v, "]")+1]
			if by[kind] == 0 {
				kinds = append(kinds, kind)
			}
			by[kind]++
		}
		for i, k := range kinds {
			kinds[i] = fmt.Sprintf("%s ×%d", k, by[k])
		}
		verdict += ": " + strings.Join(kinds, ", ")
	}
	c.note("done in %s: %s", c.took.Round(time.Millisecond), verdict)
	for i, v := range c.violations {
		if i == 20 {
			c.note("  ... %d more", len(c.violations)-20)
			break
		}
		c.note("  %s", v)
	}
}

func printTotals(cycles []*cycle, took time.Duration) {
	type agg struct{ cycles, requests, ok, leasedOK, lost, violations int }
	by := map[string]*agg{}
	var names []string
	var all agg
	for _, c := range cycles {
		a := by[c.fault.name]
		if a == nil {
			a = &agg{}
			by[c.fault.name] = a
			names = append(names, c.fault.name)
		}
		for _, x := range []*agg{a, &all} {
			x.cycles++
			x.requests += c.stats.requests
			x.ok += c.stats.ok
			x.leasedOK += c.stats.leasedOK
			x.lost += c.stats.lost
			x.violations += len(c.violations)
		}
	}
	sort.Strings(names)
	say("totals after %s:", took.Round(time.Second))
	for _, n := range names {
		a := by[n]
		say("  %-20s %2d cycles %7d requests %7d 2xx (%6d leased) %5d lost %5d violations", n, a.cycles, a.requests, a.ok, a.leasedOK, a.lost, a.violations)
	}
	say("  %-20s %2d cycles %7d requests %7d 2xx (%6d leased) %5d lost %5d violations", "all", all.cycles, all.requests, all.ok, all.leasedOK, all.lost, all.violations)
}
