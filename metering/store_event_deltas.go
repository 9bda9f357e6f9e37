package metering

import (
	"context"
	"fmt"
	"math/big"
	"math/bits"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// What the ledger's new events change besides the events table: user
// balances, parked allowances, pool balances and the daily usage rollup.
// The events are summed here, in Go, by user, by parked entry, by pool and
// by rollup row, and each table gets one statement over arrays of those
// sums (unnest), all four sent in one round trip. Sums and greatest() make
// the order of events within a batch irrelevant.
//
// The semantics are those of SQL aggregates over the inserted rows:
// amounts are summed exactly (wideSum, sent as numeric, so a balance that
// leaves bigint's range fails in Postgres with SQLSTATE 22003 and the
// reconciler dead-letters what causes it), maxima ignore absent values,
// and the rollup's names are the maxima Postgres's collation picks.

// userDeltaSQL adds summed deltas to the users that still exist.
const userDeltaSQL = `UPDATE users SET
	allowance_remaining = users.allowance_remaining + d.a,
	awarded = users.awarded + d.aw,
	purchased = users.purchased + d.pr,
	pool_used = users.pool_used + d.pu,
	allowance_period = greatest(users.allowance_period, d.ap),
	grant_month = greatest(users.grant_month, d.gm),
	last_activity_at = greatest(users.last_activity_at, d.last_use)
FROM unnest($1::bigint[], $2::numeric[], $3::numeric[], $4::numeric[], $5::numeric[],
	$6::bigint[], $7::bigint[], $8::timestamptz[]) AS d(user_id, a, aw, pr, pu, ap, gm, last_use)
WHERE users.id = d.user_id`

// parkedDeltaSQL: what users left in projects they moved out of
// (parked.go). Park events add to the entry of their project, resume
// events take it back. Only for users that still exist (no foreign key: an
// event replayed after a deletion must not fail the batch).
const parkedDeltaSQL = `INSERT INTO parked_allowances AS s
	(user_id, project_id, allowance_remaining, allowance_period, pool_used, parked)
SELECT d.user_id, d.project_id, d.a, d.ap, d.pu, d.n
FROM unnest($1::bigint[], $2::bigint[], $3::numeric[], $4::bigint[], $5::numeric[], $6::numeric[])
	AS d(user_id, project_id, a, ap, pu, n)
WHERE EXISTS (SELECT 1 FROM users WHERE users.id = d.user_id)
ON CONFLICT (user_id, project_id) DO UPDATE SET
	allowance_remaining = s.allowance_remaining + EXCLUDED.allowance_remaining,
	allowance_period = greatest(s.allowance_period, EXCLUDED.allowance_period),
	pool_used = s.pool_used + EXCLUDED.pool_used,
	parked = s.parked + EXCLUDED.parked`

const poolDeltaSQL = `UPDATE projects SET pool_balance = projects.pool_balance + d.pl
FROM unnest($1::bigint[], $2::numeric[]) AS d(project_id, pl)
WHERE projects.id = d.project_id`

// rollupDeltaSQL upserts the usage rollup rows. A variable-cost request has
// a hold and a usage event: the hold's deltas count as spent, its usage
// event's refunds as given back, so the bucket columns net them. A void
// undoes a charge whose request was refused after all: its negative cost
// and its refunds net the charge's. Requests come from usage events only.
// Each row's names are the maxima of its events' names ($11..$13: one row
// per distinct pair, k the row's ordinal), computed here so that they
// follow the database's collation. The names are not updated: they are
// fixed for a given user and project id once there is usage, and leaving
// indexed columns alone keeps the update HOT (no index writes).
const rollupDeltaSQL = `INSERT INTO usage_daily AS r (day, user_id, project_id, model, username, project_name,
	requests, credits, allowance, pool, awarded, purchased)
SELECT '1970-01-01'::date + g.day, g.user_id, g.project_id, g.model, n.username, coalesce(n.project_name, ''),
	g.requests, g.credits, g.allowance, g.pool, g.awarded, g.purchased
FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::numeric[],
		$7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[]) WITH ORDINALITY
		AS g(day, user_id, project_id, model, requests, credits, allowance, pool, awarded, purchased, k),
	(SELECT k, max(un) AS username, max(pn) AS project_name
		FROM unnest($11::bigint[], $12::text[], $13::text[]) AS x(k, un, pn) GROUP BY k) n
WHERE n.k = g.k
ON CONFLICT (day, user_id, project_id, model) DO UPDATE SET
	requests = r.requests + EXCLUDED.requests,
	credits = r.credits + EXCLUDED.credits,
	allowance = r.allowance + EXCLUDED.allowance,
	pool = r.pool + EXCLUDED.pool,
	awarded = r.awarded + EXCLUDED.awarded,
	purchased = r.purchased + EXCLUDED.purchased`

// applyDeltas applies what the new events change, in the caller's
// transaction, and returns the ledger sequence's value (read in the same
// round trip).
func applyDeltas(ctx context.Context, tx pgx.Tx, fresh []Event) (seq int64, err error) {
	d := sumDeltas(fresh)
	b := &pgx.Batch{}
	var stmts []string
	queue := func(name, sql string, args ...any) {
		b.Queue(sql, args...)
		stmts = append(stmts, name)
	}
	if u := d.users; len(u.ids) > 0 {
		queue("user balances", userDeltaSQL, u.ids, u.a, u.aw, u.pr, u.pu, u.ap, u.gm, u.lastUse)
	}
	if p := d.parked; len(p.users) > 0 {
		queue("parked allowances", parkedDeltaSQL, p.users, p.projects, p.a, p.ap, p.pu, p.n)
	}
	if r := d.rollup; len(r.users) > 0 {
		queue("usage rollup", rollupDeltaSQL, r.days, r.users, r.projects, r.models, r.requests, r.credits,
			r.allowance, r.pool, r.awarded, r.purchased, r.nameRow, r.usernames, r.projectNames)
	}
	// Pools last: every gateway's reconciler updates the same few pool
	// rows, so each holds their locks only from here to its commit.
	if p := d.pools; len(p.ids) > 0 {
		queue("pool balances", poolDeltaSQL, p.ids, p.pl)
	}
	b.Queue(`SELECT last_value FROM events_seq`)
	br := tx.SendBatch(ctx, b)
	for _, name := range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return 0, fmt.Errorf("apply events to %s: %w", name, err)
		}
	}
	if err := br.QueryRow().Scan(&seq); err != nil {
		br.Close()
		return 0, fmt.Errorf("read the ledger sequence: %w", err)
	}
	return seq, br.Close()
}

// eventDeltas is a batch's events summed by what they change.
type eventDeltas struct {
	users struct {
		ids           []int64
		a, aw, pr, pu []wideSum
		ap, gm        []pgtype.Int8
		lastUse       []pgtype.Timestamptz
	}
	parked struct {
		users, projects []int64
		a, pu, n        []wideSum
		ap              []int64
	}
	pools struct {
		ids []int64
		pl  []wideSum
	}
	rollup struct {
		days                                         []int32
		users, projects                              []int64
		models                                       []string
		requests                                     []int64
		credits, allowance, pool, awarded, purchased []wideSum
		// One row per distinct (username, project name) of each rollup
		// row, nameRow its 1-based position.
		nameRow                 []int64
		usernames, projectNames []pgtype.Text
	}
}

type parkedKey struct{ user, project int64 }

type rollupKey struct {
	day           int32
	user, project int64
	model         string
}

func (a rollupKey) less(b rollupKey) bool {
	switch {
	case a.day != b.day:
		return a.day < b.day
	case a.user != b.user:
		return a.user < b.user
	case a.project != b.project:
		return a.project < b.project
	}
	return a.model < b.model
}

type rollupNames struct {
	row               int64
	username, project string
}

// sumDeltas sums events by user, parked entry, pool and rollup row, each
// in order of its key so that rows are locked in the same order by every
// writer.
func sumDeltas(events []Event) *eventDeltas {
	d := &eventDeltas{}
	users := map[int64]int{}
	parked := map[parkedKey]int{}
	pools := map[int64]int{}
	rollup := map[rollupKey]int{}
	type userSum struct {
		a, aw, pr, pu wideSum
		ap, gm        pgtype.Int8
		lastUse       pgtype.Timestamptz
	}
	type parkedSum struct {
		a, pu, n wideSum
		ap       pgtype.Int8
	}
	type rollupSum struct {
		requests                                     int64
		credits, allowance, pool, awarded, purchased wideSum
	}
	var us []userSum
	var ps []parkedSum
	var pl []wideSum
	var rs []rollupSum
	var uKeys []int64
	var pKeys []parkedKey
	var plKeys []int64
	var rKeys []rollupKey
	names := map[rollupNames]struct{}{}
	for i := range events {
		e := &events[i]
		switch {
		case e.UserID == 0:
		case e.Kind == KindPark || e.Kind == KindResume:
			if e.ProjectID == 0 {
				break
			}
			k := parkedKey{e.UserID, e.ProjectID}
			j, ok := parked[k]
			if !ok {
				j = len(ps)
				parked[k] = j
				ps = append(ps, parkedSum{})
				pKeys = append(pKeys, k)
			}
			s := &ps[j]
			s.a.add(int64(e.Allowance))
			s.pu.add(int64(e.PoolUsed))
			if e.Kind == KindPark {
				s.n.add(1)
			} else {
				s.n.add(-1)
			}
			if e.HasPeriod && (!s.ap.Valid || e.AllowancePeriod > s.ap.Int64) {
				s.ap = pgtype.Int8{Int64: e.AllowancePeriod, Valid: true}
			}
		default:
			j, ok := users[e.UserID]
			if !ok {
				j = len(us)
				users[e.UserID] = j
				us = append(us, userSum{})
				uKeys = append(uKeys, e.UserID)
			}
			s := &us[j]
			s.a.add(int64(e.Allowance))
			s.aw.add(int64(e.Awarded))
			s.pr.add(int64(e.Purchased))
			s.pu.add(int64(e.PoolUsed))
			if e.HasPeriod && (!s.ap.Valid || e.AllowancePeriod > s.ap.Int64) {
				s.ap = pgtype.Int8{Int64: e.AllowancePeriod, Valid: true}
			}
			if e.HasGrant && (!s.gm.Valid || e.GrantMonth > s.gm.Int64) {
				s.gm = pgtype.Int8{Int64: e.GrantMonth, Valid: true}
			}
			if (e.Kind == KindUsage || e.Kind == KindHold || e.Kind == KindLease) && (!s.lastUse.Valid || e.At.After(s.lastUse.Time)) {
				s.lastUse = pgtype.Timestamptz{Time: e.At, Valid: true}
			}
		}
		if e.ProjectID != 0 && e.Pool != 0 {
			j, ok := pools[e.ProjectID]
			if !ok {
				j = len(pl)
				pools[e.ProjectID] = j
				pl = append(pl, wideSum{})
				plKeys = append(plKeys, e.ProjectID)
			}
			pl[j].add(int64(e.Pool))
		}
		if e.UserID != 0 && (e.Kind == KindUsage || e.Kind == KindHold || e.Kind == KindVoid ||
			e.Kind == KindLease || e.Kind == KindLeaseEnd) {
			k := rollupKey{utcDay(e.At), e.UserID, e.ProjectID, e.Model}
			j, ok := rollup[k]
			if !ok {
				j = len(rs)
				rollup[k] = j
				rs = append(rs, rollupSum{})
				rKeys = append(rKeys, k)
			}
			s := &rs[j]
			if e.Kind == KindUsage {
				s.requests++
			}
			if e.Kind == KindUsage || e.Kind == KindVoid {
				s.credits.add(int64(e.Cost))
			}
			s.allowance.sub(int64(e.Allowance))
			s.pool.sub(int64(e.Pool))
			s.awarded.sub(int64(e.Awarded))
			s.purchased.sub(int64(e.Purchased))
			names[rollupNames{int64(j), e.Username, e.ProjectName}] = struct{}{}
		}
	}

	sort.Slice(uKeys, func(i, j int) bool { return uKeys[i] < uKeys[j] })
	u := &d.users
	for _, id := range uKeys {
		s := &us[users[id]]
		u.ids = append(u.ids, id)
		u.a, u.aw, u.pr, u.pu = append(u.a, s.a), append(u.aw, s.aw), append(u.pr, s.pr), append(u.pu, s.pu)
		u.ap, u.gm, u.lastUse = append(u.ap, s.ap), append(u.gm, s.gm), append(u.lastUse, s.lastUse)
	}
	sort.Slice(pKeys, func(i, j int) bool {
		a, b := pKeys[i], pKeys[j]
		return a.user < b.user || a.user == b.user && a.project < b.project
	})
	p := &d.parked
	for _, k := range pKeys {
		s := &ps[parked[k]]
		p.users, p.projects = append(p.users, k.user), append(p.projects, k.project)
		ap := int64(-1) // never refilled
		if s.ap.Valid {
			ap = s.ap.Int64
		}
		p.a, p.pu, p.n, p.ap = append(p.a, s.a), append(p.pu, s.pu), append(p.n, s.n), append(p.ap, ap)
	}
	sort.Slice(plKeys, func(i, j int) bool { return plKeys[i] < plKeys[j] })
	for _, id := range plKeys {
		d.pools.ids, d.pools.pl = append(d.pools.ids, id), append(d.pools.pl, pl[pools[id]])
	}
	// Rollup rows in key order too (their names refer to their place in
	// it, through rollupRow).
	order := make([]int, len(rKeys))
	for j := range order {
		order[j] = j
	}
	sort.Slice(order, func(i, j int) bool { return rKeys[order[i]].less(rKeys[order[j]]) })
	rollupRow := make([]int64, len(rKeys))
	for pos, j := range order {
		rollupRow[j] = int64(pos) + 1
	}
	r := &d.rollup
	for _, j := range order {
		k, s := rKeys[j], &rs[j]
		r.days, r.users, r.projects, r.models = append(r.days, k.day), append(r.users, k.user),
			append(r.projects, k.project), append(r.models, k.model)
		r.requests, r.credits, r.allowance = append(r.requests, s.requests), append(r.credits, s.credits),
			append(r.allowance, s.allowance)
		r.pool, r.awarded, r.purchased = append(r.pool, s.pool), append(r.awarded, s.awarded), append(r.purchased, s.purchased)
	}
	for n := range names {
		r.nameRow = append(r.nameRow, rollupRow[n.row])
		r.usernames = append(r.usernames, pgtype.Text{String: n.username, Valid: n.username != ""})
		r.projectNames = append(r.projectNames, pgtype.Text{String: n.project, Valid: n.project != ""})
	}
	return d
}

// utcDay is the day of t in UTC, as days since 1970-01-01 (the ledger's
// rollup day, (occurred_at AT TIME ZONE 'UTC')::date).
func utcDay(t time.Time) int32 {
	days := t.Unix() / 86400
	if t.Unix() < 0 && t.Unix()%86400 != 0 {
		days--
	}
	return int32(days)
}

// wideSum is an exact sum of int64 amounts: 128 bits, so no batch can
// overflow it. Postgres receives it as numeric, as SQL's own sum() of a
// bigint column would produce.
type wideSum struct {
	hi int64
	lo uint64
}

func (w *wideSum) add(v int64) {
	var carry uint64
	w.lo, carry = bits.Add64(w.lo, uint64(v), 0)
	w.hi += v>>63 + int64(carry)
}

func (w *wideSum) sub(v int64) {
	var borrow uint64
	w.lo, borrow = bits.Sub64(w.lo, uint64(v), 0)
	w.hi -= v>>63 + int64(borrow)
}

// NumericValue encodes the sum for pgx.
func (w wideSum) NumericValue() (pgtype.Numeric, error) {
	if w.hi == int64(w.lo)>>63 { // fits in an int64
		return pgtype.Numeric{Int: big.NewInt(int64(w.lo)), Valid: true}, nil
	}
	n := new(big.Int).Lsh(big.NewInt(w.hi), 64)
	return pgtype.Numeric{Int: n.Add(n, new(big.Int).SetUint64(w.lo)), Valid: true}, nil
}
