//go:build faults

package faults

import (
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

// The revocation check on made-up records: a refusal after the
// deactivation passes; a 2xx, or a charge, after it is reported; requests
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
}
