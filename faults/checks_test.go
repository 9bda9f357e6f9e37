//go:build faults

package faults

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// The credit-lease checks on made-up ledgers: a ledger that keeps the
// rules passes, and each kind of breach is reported under its invariant.
// (The fault cycles themselves rarely break them, so this is what shows
// the checks can fail.) Runs in milliseconds, without processes.
func TestCheckCreditLeasesCatchesBreaches(t *testing.T) {
	const mc = int64(metering.Micro)
	rich := &cycleUser{name: "u0", id: 1, credits: 10 * metering.Micro}
	lease := func(id string, size int64) *ledgerEvent {
		return &ledgerEvent{id: id, kind: metering.KindLease, userID: 1, dAwarded: -size * mc, reserved: size * mc}
	}
	end := func(id string, back int64, note string) *ledgerEvent {
		return &ledgerEvent{id: id + ":e", kind: metering.KindLeaseEnd, userID: 1, dAwarded: back * mc, note: note}
	}
	uses := func(n int) []*ledgerEvent {
		var out []*ledgerEvent
		for i := range n {
			out = append(out, &ledgerEvent{id: "use" + string(rune('a'+i)), kind: "usage", userID: 1, cost: mc,
				request: "GET /l/1/ok/x"})
		}
		return out
	}
	killed := []kill{{gw: 0, at: time.Now()}}
	for _, tc := range []struct {
		name      string
		events    []*ledgerEvent
		uncharged int
		kills     []kill
		want      string // "" passes
	}{
		{name: "ended by its gateway, every use recorded",
			events: append([]*ledgerEvent{lease("L1", 5), end("L1", 2, "")}, uses(3)...)},
		{name: "swept after a kill, two uses after the last flush",
			events:    append([]*ledgerEvent{lease("L1", 5), end("L1", 4, sweptLeaseNote)}, uses(1)...),
			uncharged: 2, kills: killed},
		{name: "a lease never ended",
			events: append([]*ledgerEvent{lease("L1", 5)}, uses(5)...),
			want:   "[credit leases ended]"},
		{name: "more usage than the lease kept",
			events: append([]*ledgerEvent{lease("L1", 5), end("L1", 2, "")}, uses(4)...),
			want:   "[leased usage is what the leases kept]"},
		{name: "uncharged 2xx without a swept lease",
			events:    append([]*ledgerEvent{lease("L1", 5), end("L1", 2, "")}, uses(3)...),
			uncharged: 1, kills: killed,
			want: "no lease of the user was ended by the sweeper"},
		{name: "more uncharged 2xx than the swept lease gave back",
			events:    append([]*ledgerEvent{lease("L1", 5), end("L1", 2, sweptLeaseNote)}, uses(3)...),
			uncharged: 3, kills: killed,
			want: "more than the 1 swept leases gave back"},
		{name: "swept with no gateway killed",
			events: append([]*ledgerEvent{lease("L1", 5), end("L1", 2, sweptLeaseNote)}, uses(3)...),
			want:   "[only a dead gateway's leases are swept]"},
		{name: "charged beyond the credits",
			events: append([]*ledgerEvent{lease("L1", 12), end("L1", 0, "")}, uses(12)...),
			want:   "[no overdraft]"},
	} {
		c := &cycle{users: []*cycleUser{rich}, kills: tc.kills, leasedUncharged: map[*cycleUser]int{rich: tc.uncharged}}
		(&world{}).checkCreditLeases(c, tc.events)
		got := strings.Join(c.violations, "\n")
		if tc.want == "" && got != "" {
			t.Errorf("%s: want no violation, got:\n%s", tc.name, got)
		}
		if tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: want a violation with %q, got:\n%s", tc.name, tc.want, got)
		}
	}
}

// The revocation check on made-up records: a refusal after a key
// rotation passes; a 2xx, or a charge, after it is reported; requests
// that started before it are not held to it.
func TestCheckRevocationCatchesBreaches(t *testing.T) {
	u := &cycleUser{name: "u1"}
	at := time.Now()
	before, after := at.Add(-time.Millisecond), at.Add(time.Millisecond)
	records := []*record{
		{n: 1, user: u, kind: kindLeased, start: before, status: 200},
		{n: 2, user: u, kind: kindLeased, start: after, status: 401},
		{n: 3, user: u, kind: kindLeased, start: after, status: 200},
		{n: 4, user: u, kind: kindFixed, start: after, outcome: lost},
	}
	byN := map[int64][]*ledgerEvent{
		1: {{id: "a", kind: "usage", cost: 1_000_000}},
		3: {{id: "b", kind: "usage", cost: 1_000_000}},
		4: {{id: "c", kind: "usage", cost: 1_000_000}},
	}
	c := &cycle{revoked: u, revokedHow: "rotate", revokedAt: at, records: records}
	(&world{}).checkRevocation(c, byN)
	got := strings.Join(c.violations, "\n")
	if len(c.violations) != 2 || !strings.Contains(got, "GET /l/3/") || !strings.Contains(got, "GET /f/4/") {
		t.Errorf("want violations for requests 3 (2xx) and 4 (charged), got:\n%s", got)
	}
	if c.stats.revokedTried != 3 {
		t.Errorf("want 3 requests counted after the revocation, got %d", c.stats.revokedTried)
	}
	// A removal of credits leaves the user what it had left: its later
	// 2xx are held to the lease and overdraft checks instead.
	removal := &cycle{revoked: u, revokedHow: "adjust", revokedAt: at, records: records}
	(&world{}).checkRevocation(removal, byN)
	if len(removal.violations) != 0 || removal.stats.revokedTried != 3 {
		t.Errorf("a removal: want 3 requests counted and no violation, got %d and %v", removal.stats.revokedTried, removal.violations)
	}
}

// The price check on made-up settlements around a price change: a request
// started after the change must pay the new price, one that ended before
// it the old one, one under way meanwhile either; anything else, or the
// wrong one of the two, is reported.
func TestCheckPriceCatchesBreaches(t *testing.T) {
	old := metering.Price{InputPerMillion: inputRates[0], OutputPerMillion: outputRates[0]}
	cur := metering.Price{InputPerMillion: inputRates[1], OutputPerMillion: outputRates[1]}
	at := time.Now()
	ch := &priceChange{from: old, to: cur, sent: at, done: at.Add(10 * time.Millisecond)}
	in, out, status := int64(100), int64(10), int32(200)
	units := metering.Units{InputTokens: in, OutputTokens: out}
	settled := func(cost metering.Credits) *ledgerEvent {
		return &ledgerEvent{kind: "usage", cost: int64(cost), upstreamStatus: &status, inputUnits: &in, outputUnits: &out}
	}
	before := &record{n: 1, kind: kindChat, start: at.Add(-time.Second), end: at.Add(-time.Millisecond)}
	during := &record{n: 2, kind: kindStream, start: at.Add(-time.Second), end: at.Add(time.Second)}
	after := &record{n: 3, kind: kindChat, start: at.Add(time.Second), end: at.Add(2 * time.Second)}
	for _, tc := range []struct {
		name string
		r    *record
		cost metering.Credits
		want bool // a violation
	}{
		{"ended before, old price", before, old.Cost(units), false},
		{"ended before, new price", before, cur.Cost(units), true},
		{"under way, old price", during, old.Cost(units), false},
		{"under way, new price", during, cur.Cost(units), false},
		{"under way, neither", during, cur.Cost(units) + 1, true},
		{"started after, new price", after, cur.Cost(units), false},
		{"started after, old price", after, old.Cost(units), true},
	} {
		c := &cycle{priceChange: ch}
		(&world{price: cur}).checkPrice(c, tc.r, settled(tc.cost))
		if got := len(c.violations) > 0; got != tc.want {
			t.Errorf("%s: violation %v, want %v: %v", tc.name, got, tc.want, c.violations)
		}
	}
}

// The fixed-cost route's cost across reloads of its gateway: the cost of
// each configuration the gateway ran while the request was under way.
func TestFixedCostsAcrossReloads(t *testing.T) {
	at := time.Now()
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	c := &cycle{reloads: []reload{
		{gw: 0, sent: ms(100), done: ms(200), to: reloadRoutes},
		{gw: 0, sent: ms(300), done: ms(400), to: baseRoutes},
	}}
	one, two := int64(metering.Micro), 2*int64(metering.Micro)
	for _, tc := range []struct {
		name       string
		gw         int
		kind       reqKind
		start, end int
		want       []int64
	}{
		{"before the first reload", 0, kindFixed, 0, 50, []int64{one}},
		{"across the first reload", 0, kindFixed, 50, 150, []int64{one, two}},
		{"between the reloads", 0, kindFixed, 210, 290, []int64{two}},
		{"across both", 0, kindFixed, 50, 500, []int64{one, two}},
		{"after both", 0, kindFixed, 410, 500, []int64{one}},
		{"another gateway", 1, kindFixed, 210, 290, []int64{one}},
		{"the leased route", 0, kindLeased, 210, 290, []int64{one}},
	} {
		r := &record{gw: tc.gw, kind: tc.kind, start: ms(tc.start), end: ms(tc.end)}
		if got := c.fixedCosts(r); !slices.Equal(got, tc.want) {
			t.Errorf("%s: costs %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The transfer checks on made-up ledgers: each transfer's events are found
// by its note; a 200 needs its debit and its credit, a refusal or a
// transfer never sent none, an unanswered one both or neither, and no
// transfer event may lack a client.
func TestCheckTransfersCatchesBreaches(t *testing.T) {
	const mc = int64(metering.Micro)
	keys, err := metering.NewRedisKeys("t", 4)
	if err != nil {
		t.Fatal(err)
	}
	a := &cycleUser{name: "x0", id: 1}
	b := &cycleUser{name: "x1", id: 2}
	x := func(o outcome, status int) *xfer {
		return &xfer{n: 7, from: a, to: b, amount: 3 * metering.Micro, outcome: o, status: status}
	}
	debit := &ledgerEvent{id: "E1", kind: metering.KindTransfer, userID: 1, dAwarded: -3 * mc, note: "faults transfer 7"}
	credit := &ledgerEvent{id: "E2", kind: metering.KindTransfer, userID: 2, dAwarded: 3 * mc, note: "faults transfer 7"}
	wrongCredit := &ledgerEvent{id: "E2", kind: metering.KindTransfer, userID: 2, dAwarded: 2 * mc, note: "faults transfer 7"}
	stray := &ledgerEvent{id: "E9", kind: metering.KindTransfer, userID: 2, dAwarded: mc, note: "faults transfer 99"}
	full := []*ledgerEvent{debit, credit}
	for _, tc := range []struct {
		name   string
		x      *xfer
		events []*ledgerEvent
		want   string // "" passes
	}{
		{name: "200, made", x: x(answered, 200), events: full},
		{name: "409, nothing", x: x(answered, 409)},
		{name: "lost, made in full", x: x(lost, 0), events: full},
		{name: "503, not at all", x: x(answered, 503)},
		{name: "not sent, nothing", x: x(notSent, 0)},
		{name: "200, only its debit", x: x(answered, 200), events: []*ledgerEvent{debit}, want: "not its debit and credit"},
		{name: "200, a credit of another amount", x: x(answered, 200), events: []*ledgerEvent{debit, wrongCredit}, want: "not its debit and credit"},
		{name: "503, half done", x: x(answered, 503), events: []*ledgerEvent{debit}, want: "half a transfer"},
		{name: "lost, half done", x: x(lost, 0), events: []*ledgerEvent{credit}, want: "half a transfer"},
		{name: "409, yet made", x: x(answered, 409), events: full, want: "refused, yet"},
		{name: "not sent, yet made", x: x(notSent, 0), events: full, want: "not sent"},
		{name: "an event no client sent", x: x(answered, 200), events: []*ledgerEvent{debit, credit, stray}, want: "no client sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tt := transferTotals{statuses: map[int]int{}}
			checkTransferLedger(1, []*xfer{tc.x}, tc.events, keys, &tt, func(inv, detail string) { got = append(got, "["+inv+"] "+detail) })
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("want no violation, got %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Fatalf("want one violation with %q, got %q", tc.want, got)
			}
			if tt.sent != 1 || tt.crossShard != 1 {
				t.Fatalf("counted %d sent, %d between shards; want 1 and 1 (users 1 and 2 are in shards 1 and 2)", tt.sent, tt.crossShard)
			}
		})
	}
}
