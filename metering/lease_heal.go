package metering

import "context"

// What a heal (heal.go) does for credit leases after Redis came back
// without its last writes: the ledger, not Redis, says which leases are
// open.

// dropEndedCreditLeases removes the leases Redis brought back although the
// ledger holds their lease_end event, so nobody ends them twice.
func (h healer) dropEndedCreditLeases(ctx context.Context) (int, error) {
	n := 0
	for _, sh := range h.healedShards() {
		d, err := h.dropFinished(ctx, sh.CreditLeases(), ":e", sh.CreditLease, sh.UserCreditLeases)
		n += d
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// restoreLostCreditLeases recreates, from its lease event, each lease the
// ledger has open (no lease_end) that Redis no longer has, so what it did
// not use can go back: its gateway ends it with its own count of the use,
// or, if that gateway is gone, the sweeper ends it after the grace. The
// record's use is unknown here and restored as none (the sweeper then
// gives the whole lease back: docs/architecture.md bounds this by one
// lease); its allowance period is the user's current one in the ledger.
func (h healer) restoreLostCreditLeases(ctx context.Context, ckpt int64) (int, error) {
	rows, err := h.db.Query(ctx, `SELECT l.event_id, l.user_id, coalesce(l.username, ''),
			coalesce(l.project_id, 0), coalesce(l.project_name, ''),
			l.d_allowance, l.d_pool, l.d_awarded, l.d_purchased, coalesce(l.reserved, 0),
			coalesce(u.allowance_period, -1)
		FROM events l LEFT JOIN users u ON u.id = l.user_id
		WHERE l.kind = 'lease' AND l.user_id IS NOT NULL AND ($1 = 0 OR l.seq > $1)
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = l.event_id || ':e')`, ckpt)
	if err != nil {
		return 0, err
	}
	deadline := h.cfg.Now().Add(h.cfg.Leases.Life + h.cfg.Leases.SweepGrace).UnixMilli()
	var calls []*scriptCall
	for rows.Next() {
		var id, un, pn string
		var uid, pid, a, p, w, r, size, ap int64
		if err := rows.Scan(&id, &uid, &un, &pid, &pn, &a, &p, &w, &r, &size, &ap); err != nil {
			rows.Close()
			return 0, err
		}
		// restore_reservation.lua writes the record and adds it to two
		// sets: here the deployment's and the user's credit-lease sets.
		if !h.heals(pid, uid) {
			continue
		}
		sh := h.keys.ShardOf(pid, uid)
		c := getCall(restoreReservationScript)
		c.Keys = append(c.Keys, sh.CreditLease(id), sh.CreditLeases(), sh.UserCreditLeases(uid))
		c.Args = append(c.Args, id, deadline, "u", uid, "p", pid, "un", un, "pn", pn, "ap", ap,
			"a", 0-a, "pl", 0-p, "w", 0-w, "r", 0-r, "tk", size, "used", 0, "g", "", "d", deadline)
		calls = append(calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return len(calls), h.healRunAll(ctx, calls)
}
