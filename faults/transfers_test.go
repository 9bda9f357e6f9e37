//go:build faults

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// Transfers of awarded credits under faults. Each cycle has five users of
// its own that only send each other credits through the admin API of a
// random gateway (POST /transfers) while the load runs and the fault
// strikes. Users without a project are in the shard of their id, so with
// redis_shards > 1 most pairs are in different shards: such a transfer
// takes two steps (metering/transfer_shards.go), and one its gateway left
// between them (killed, or it lost Redis or Postgres) is finished by the
// sweeper a minute later. One of them is also moved, once, to a
// project of its own, most often in another shard (metering/move_shards.go:
// three steps, undone or finished by the sweeper when cut short); the
// gateway may refuse it with 409 while a transfer of the user is between
// its steps, which is counted, not a violation.
//
// Nothing is checked per cycle: a transfer left between its steps may be
// finished only in a later cycle. After the last cycle finalTransfers has
// a sweeper with its clock past the grace finish what is left, then
// checks every transfer against the ledger and the balances (checkTransfers).

const (
	// transferUsers: users without a project are in the shard of their
	// id, and theirs are consecutive, so five in four shards make most
	// pairs cross shards and at least one pair share one (the one-script
	// transfer).
	transferUsers   = 5
	transferCredits = 40 // each transfer user's credits at the start
	// transferClientTimeout is longer than a Redis stall (9s) plus the
	// gateway's script timeout, so most answers arrive.
	transferClientTimeout = 20 * time.Second
)

// moveBusyText is in the refusal of a move between shards while a
// transfer of the user is between its steps (metering/move_shards.go).
const moveBusyText = "transfer between shards in progress"

var transferClient = &http.Client{Timeout: transferClientTimeout}

// xfer is one POST /transfers and what its client saw.
type xfer struct {
	n          int64
	from, to   *cycleUser
	amount     metering.Credits
	gwName     string
	start, end time.Time
	outcome    outcome
	status     int
	body, err  string
}

func (x *xfer) note() string { return fmt.Sprintf("faults transfer %d", x.n) }

func (x *xfer) String() string {
	what := fmt.Sprintf("%d %s", x.status, oneLine(x.body))
	switch x.outcome {
	case notSent:
		what = "not sent: " + x.err
	case lost:
		what = "lost: " + x.err
	}
	return fmt.Sprintf("transfer %d (%s → %s, %s, via %s): %s", x.n, x.from.name, x.to.name, credits(int64(x.amount)), x.gwName, what)
}

// move is the one attempt per cycle to move a transfer user to a project.
type move struct {
	user    *cycleUser
	project string
	status  int
	body    string
	err     string
}

// transfers is a cycle's transfer users and what was done with them.
type transfers struct {
	users   []*cycleUser
	project string // the project the move is to
	mu      sync.Mutex
	done    []*xfer
	move    *move
	stop    chan struct{}
	wg      sync.WaitGroup
}

// setupTransfers creates the cycle's transfer users (no project) and the
// project one of them will be moved to.
func (w *world) setupTransfers(c *cycle) error {
	c.xfers = &transfers{project: fmt.Sprintf("c%d-x", c.index), stop: make(chan struct{})}
	// No pool: its members draw on none. 409: a retried create whose
	// first answer was lost.
	if status, err := w.admin("POST", "/projects", map[string]any{"name": c.xfers.project}, nil); err != nil && status != http.StatusConflict {
		return err
	}
	for i := range transferUsers {
		u := &cycleUser{name: fmt.Sprintf("c%d-x%d", c.index, i), credits: transferCredits * metering.Micro}
		var err error
		if u.key, err = w.createUser(u.name, "", u.credits); err != nil {
			return err
		}
		c.xfers.users = append(c.xfers.users, u)
	}
	return nil
}

// startTransfers sends transfers between the cycle's transfer users until
// stopTransfers, one at a time, to a random gateway each (a down one too:
// then nothing may change).
func (w *world) startTransfers(c *cycle) {
	t := c.xfers
	rng := rand.New(rand.NewSource(c.seed ^ 0x7f4a7c15))
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-t.stop:
				return
			case <-time.After(time.Duration(100+rng.Intn(300)) * time.Millisecond):
			}
			g := w.gws[rng.Intn(len(w.gws))]
			// Early: a cycle that kills a gateway stops its load (and
			// so its transfers) within seconds, and transfers are slow
			// then (each recalls leases, waiting for the dead gateway's
			// heartbeat to expire).
			if i == 2 {
				t.move = w.moveUser(g, t.users[0], t.project)
				continue
			}
			a := rng.Intn(len(t.users))
			b := (a + 1 + rng.Intn(len(t.users)-1)) % len(t.users)
			x := &xfer{n: w.nextN.Add(1), from: t.users[a], to: t.users[b],
				amount: metering.Credits(1+rng.Intn(15)) * metering.Micro, gwName: g.name}
			w.sendTransfer(g, x)
			t.mu.Lock()
			t.done = append(t.done, x)
			t.mu.Unlock()
		}
	}()
}

func (t *transfers) stopTransfers() {
	close(t.stop)
	t.wg.Wait()
}

// sendTransfer posts x to gateway g once (never again: a transfer whose
// answer was lost may have been made).
func (w *world) sendTransfer(g *gateway, x *xfer) {
	body, _ := json.Marshal(map[string]any{"from": x.from.name, "to": x.to.name, "amount": x.amount, "note": x.note()})
	x.start = time.Now()
	defer func() { x.end = time.Now() }()
	status, b, err := w.adminOnce(g, "POST", "/transfers", body)
	switch {
	case err != nil && status == 0 && isRefused(err):
		x.outcome, x.err = notSent, err.Error()
	case err != nil:
		x.outcome, x.status, x.err = lost, status, err.Error()
	default:
		x.outcome, x.status, x.body = answered, status, b
	}
}

// moveUser asks gateway g to move u to project.
func (w *world) moveUser(g *gateway, u *cycleUser, project string) *move {
	m := &move{user: u, project: project}
	body, _ := json.Marshal(map[string]any{"project": project})
	status, b, err := w.adminOnce(g, "PATCH", "/users/"+u.name, body)
	m.status, m.body = status, b
	if err != nil {
		m.err = err.Error()
	}
	return m
}

// adminOnce is one admin API call to gateway g, not retried.
func (w *world) adminOnce(g *gateway, method, path string, body []byte) (int, string, error) {
	req, _ := http.NewRequest(method, g.base()+"/admin/v1"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := transferClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// isRefused reports a connection refused: the gateway was down and never
// saw the call.
func isRefused(err error) bool { return strings.Contains(err.Error(), "connection refused") }

// transferTotals is what the transfers of the whole run came to, for the
// summary.
type transferTotals struct {
	sent, ok, insufficient, other, notSent, lost int
	crossShard                                   int // between users in different shards (at the end)
	unansweredMade, unansweredNone               int // lost or 5xx: made in full, or not at all
	finishedAtEnd                                int // pending transfers the final sweep finished
	moves, moved, movesBusy, movesOther          int
	statuses                                     map[int]int // answers by status
}

// finalTransfers finishes what transfers the gateways left between their
// steps, with a sweeper whose clock is past their grace (the gateways'
// own sweepers would, a minute later), then checks every cycle's
// transfers. It returns the violations and the totals.
func (w *world) finalTransfers(cycles []*cycle) ([]string, transferTotals) {
	tt := transferTotals{statuses: map[int]int{}}
	var violations []string
	violate := func(invariant, detail string) { violations = append(violations, "["+invariant+"] "+detail) }

	pending, err := w.pendingTransfers()
	if err != nil {
		violate("transfers finished", "reading pending_transfers: "+err.Error())
		return violations, tt
	}
	if pending > 0 {
		n, err := w.sweepPendingTransfers()
		tt.finishedAtEnd = n
		if err != nil {
			violate("transfers finished", err.Error())
		}
	}
	// What the sweep did may be in the streams still.
	err = w.waitDrained()
	if err != nil {
		violate("drain", err.Error())
	}
	if n, err := w.pendingTransfers(); err != nil || n > 0 {
		violate("transfers finished", fmt.Sprintf("pending_transfers holds %d rows after the final sweep (err %v): a transfer left half done", n, err))
	}
	for _, c := range cycles {
		if c.xfers != nil {
			w.checkTransfers(c, &tt, violate)
		}
	}
	return violations, tt
}

func (w *world) pendingTransfers() (int, error) {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	var n int
	err := w.db.QueryRow(ctx, `SELECT count(*) FROM pending_transfers`).Scan(&n)
	return n, err
}

// sweepPendingTransfers runs the sweeper of an engine of the suite's own,
// its clock past pendingTransferGrace (one minute), until pending_transfers
// is empty: the same code the gateways' sweepers run, without waiting for
// the wall clock. The load has stopped and every reservation and credit
// lease has ended, so there is nothing else for it to sweep. It needs no
// Redis fence: Redis runs, and the gateways have verified (healed) it since
// its last restart. It returns how many rows there were.
func (w *world) sweepPendingTransfers() (int, error) {
	before, err := w.pendingTransfers()
	if err != nil {
		return 0, err
	}
	clock := meteringtest.NewClock(time.Now().Add(5 * time.Minute))
	e, err := metering.NewEngine(w.redis.client, w.db, metering.Config{RedisPrefix: redisPrefix,
		RedisShards: *flagShards, KeyPepper: []byte(w.pepper), Now: clock.Now})
	if err != nil {
		return 0, fmt.Errorf("the suite's engine: %w", err)
	}
	defer e.Close()
	s, err := e.NewSweeper(metering.SweeperConfig{Interval: time.Second})
	if err != nil {
		return 0, err
	}
	// RunOnce does nothing while a gateway's sweeper holds the lock: again
	// until the rows are gone.
	var last error
	err = waitFor("the final sweep finished every pending transfer", 2*time.Minute, func() (bool, string) {
		ctx, cancel := ctxTimeout(time.Minute)
		defer cancel()
		if _, last = s.RunOnce(ctx); last != nil {
			return false, last.Error()
		}
		n, err := w.pendingTransfers()
		if err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%d pending transfers", n)
	})
	return before, err
}

// checkTransfers holds a cycle's transfers to the ledger, once no transfer
// is pending:
//
//   - answered 200: its debit and its credit, each exactly once;
//   - refused (4xx): no event;
//   - lost, or 5xx: made in full or not at all (the sweeper finishes a
//     transfer whose debit ran), never half;
//   - not sent (gateway down): no event.
//
// And for the cycle's transfer users: awarded credits conserved (no transfer creates
// or loses any), Postgres equals its ledger, Redis equals Postgres, never
// below zero. The move: refused with 409 only between shards while a
// transfer of the user is between its steps, else the project in
// Postgres is what its answer says.
func (w *world) checkTransfers(c *cycle, tt *transferTotals, violate func(string, string)) {
	t := c.xfers
	var names []string
	for _, u := range t.users {
		names = append(names, u.name)
	}
	rows, err := w.userRows(names)
	if err != nil {
		violate("transfers", fmt.Sprintf("cycle %d: reading users: %v", c.index, err))
		return
	}
	var ids []int64
	byID := map[int64]*cycleUser{}
	for _, u := range t.users {
		r := rows[u.name]
		if r == nil {
			violate("transfers", fmt.Sprintf("cycle %d: user %s not in Postgres", c.index, u.name))
			return
		}
		u.id, u.projectID = r.id, r.projectID
		ids = append(ids, u.id)
		byID[u.id] = u
	}
	events, err := w.ledger(ids, -1)
	if err != nil {
		violate("transfers", fmt.Sprintf("cycle %d: reading the ledger: %v", c.index, err))
		return
	}
	sums := map[int64]int64{}
	for _, e := range events {
		sums[e.userID] += e.dAwarded
	}
	checkTransferLedger(c.index, t.done, events, w.keys, tt, violate)
	var pgTotal, want int64
	for _, u := range t.users {
		want += int64(u.credits)
		row := rows[u.name]
		pg := row.fields
		pgTotal += pg[0]
		if pg[0] != sums[u.id] {
			violate("Postgres equals its ledger", fmt.Sprintf("cycle %d: user %s: Postgres awarded %s, its events sum to %s", c.index, u.name, credits(pg[0]), credits(sums[u.id])))
		}
		if pg[0] < 0 {
			violate("never beyond the balance", fmt.Sprintf("cycle %d: user %s: Postgres awarded %s", c.index, u.name, credits(pg[0])))
		}
		rf, loaded, err := w.redisUser(row.projectID, row.id)
		if err != nil {
			violate("balances", fmt.Sprintf("cycle %d: user %s: reading Redis: %v", c.index, u.name, err))
			continue
		}
		if loaded && rf != pg {
			violate("Redis equals Postgres", fmt.Sprintf("cycle %d: user %s (shard %d): Redis [aw pr a ap pu gm] = %v, Postgres = %v",
				c.index, u.name, w.keys.ShardOf(row.projectID, row.id).Index(), rf, pg))
		}
	}
	if pgTotal != want {
		violate("transfers conserve credits", fmt.Sprintf("cycle %d: the transfer users hold %s awarded in Postgres, had %s", c.index, credits(pgTotal), credits(want)))
	}
	if m := t.move; m != nil {
		tt.moves++
		pid, _, err := w.projectRow(m.project)
		moved := err == nil && m.user.projectID == pid
		switch {
		case err != nil:
			violate("move", fmt.Sprintf("cycle %d: reading project %s: %v", c.index, m.project, err))
		case m.status == http.StatusConflict && strings.Contains(m.body, moveBusyText):
			tt.movesBusy++
			// Refused only between shards, and then nothing moved.
			if w.keys.ProjectShard(pid) == w.keys.ShardOf(0, m.user.id) || moved {
				violate("move", fmt.Sprintf("cycle %d: moving %s (shard %d) to %s (shard %d): %d %s; moved: %v",
					c.index, m.user.name, w.keys.ShardOf(0, m.user.id).Index(), m.project, w.keys.ProjectShard(pid).Index(), m.status, oneLine(m.body), moved))
			}
		case m.status == http.StatusOK:
			tt.moved++
			if !moved {
				violate("move", fmt.Sprintf("cycle %d: moving %s to %s answered 200, yet Postgres has project %d", c.index, m.user.name, m.project, m.user.projectID))
			}
		case m.status/100 == 4:
			violate("move", fmt.Sprintf("cycle %d: moving %s to %s: %d %s", c.index, m.user.name, m.project, m.status, oneLine(m.body)))
		default: // lost or 5xx: either
			tt.movesOther++
		}
	}
}

// checkTransferLedger holds each transfer to its events in the ledger
// (found by its note), by what its client saw (checkTransfers), and
// reports transfer events no client sent.
func checkTransferLedger(index int, done []*xfer, events []*ledgerEvent, keys metering.RedisKeys, tt *transferTotals, violate func(string, string)) {
	byNote := map[string][]*ledgerEvent{}
	for _, e := range events {
		if e.kind == metering.KindTransfer {
			byNote[e.note] = append(byNote[e.note], e)
		}
	}
	for _, x := range done {
		tt.sent++
		if x.outcome == answered {
			tt.statuses[x.status]++
		}
		if keys.ShardOf(x.from.projectID, x.from.id) != keys.ShardOf(x.to.projectID, x.to.id) {
			tt.crossShard++
		}
		evs := byNote[x.note()]
		delete(byNote, x.note())
		full := len(evs) == 2 && hasDelta(evs, x.from.id, -int64(x.amount)) && hasDelta(evs, x.to.id, int64(x.amount))
		switch {
		case x.outcome == notSent:
			tt.notSent++
			if len(evs) != 0 {
				violate("transfers", fmt.Sprintf("cycle %d: %s; the ledger holds %s", index, x, eventList(evs)))
			}
		case x.outcome == answered && x.status/100 == 2:
			tt.ok++
			if !full {
				violate("transfers", fmt.Sprintf("cycle %d: %s; the ledger holds [%s], not its debit and credit", index, x, eventList(evs)))
			}
		case x.outcome == answered && x.status/100 == 4:
			if x.status == http.StatusConflict {
				tt.insufficient++
			} else {
				tt.other++
			}
			if len(evs) != 0 {
				violate("transfers", fmt.Sprintf("cycle %d: %s refused, yet the ledger holds [%s]", index, x, eventList(evs)))
			}
		default: // lost, or 5xx
			if x.outcome == lost {
				tt.lost++
			} else {
				tt.other++
			}
			switch {
			case len(evs) == 0:
				tt.unansweredNone++
			case full:
				tt.unansweredMade++
			default:
				violate("transfers", fmt.Sprintf("cycle %d: %s; the ledger holds [%s]: half a transfer", index, x, eventList(evs)))
			}
		}
	}
	for note, evs := range byNote {
		violate("transfers", fmt.Sprintf("cycle %d: transfer events no client sent (note %q): %s", index, note, eventList(evs)))
	}
}

func hasDelta(evs []*ledgerEvent, userID, delta int64) bool {
	for _, e := range evs {
		if e.userID == userID && e.dAwarded == delta && e.total() == delta {
			return true
		}
	}
	return false
}

// report prints a cycle's transfers by outcome.
func (t *transfers) report(c *cycle) {
	by := map[string]int{}
	var slowest time.Duration
	for _, x := range t.done {
		slowest = max(slowest, x.end.Sub(x.start))
		switch x.outcome {
		case notSent:
			by["not sent"]++
		case lost:
			by["lost"]++
		default:
			by[fmt.Sprint(x.status)]++
		}
	}
	var parts []string
	for k, v := range by {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	mv := "none"
	if m := t.move; m != nil {
		switch {
		case m.err != "":
			mv = m.err
		case m.status == http.StatusOK:
			mv = "200, moved"
		default:
			mv = fmt.Sprintf("%d %s", m.status, oneLine(m.body))
		}
	}
	sort.Strings(parts)
	c.note("%d transfers [%s], the slowest answered or given up after %s; move of %s to %s: %s",
		len(t.done), strings.Join(parts, " "), slowest.Round(time.Millisecond), t.users[0].name, t.project, mv)
}

func printTransferTotals(tt transferTotals) {
	codes := make([]int, 0, len(tt.statuses))
	for code := range tt.statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	var st []string
	for _, code := range codes {
		st = append(st, fmt.Sprintf("%d×%d", code, tt.statuses[code]))
	}
	say("  transfers: %d sent, %d between shards; %d 200, %d refused 409, %d other answers (answers by status: %s), %d not sent, %d lost; of the lost and 5xx %d made in full, %d not at all; %d finished by the final sweep",
		tt.sent, tt.crossShard, tt.ok, tt.insufficient, tt.other, strings.Join(st, " "), tt.notSent, tt.lost, tt.unansweredMade, tt.unansweredNone, tt.finishedAtEnd)
	say("  moves to a project: %d tried, %d moved, %d refused (409 %q), %d unanswered",
		tt.moves, tt.moved, tt.movesBusy, moveBusyText, tt.movesOther)
}
