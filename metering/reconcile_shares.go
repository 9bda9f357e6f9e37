package metering

import (
	"context"
	"errors"
)

// Writing one batch in several transactions at once. The ledger's COPY is
// most of a batch's time, and one transaction runs on one Postgres
// backend, so on one core; the batch is therefore split by user and each
// share written in its own transaction, side by side.
//
// Why by user: a share's statements then update only its own users, parked
// entries and rollup rows, so the transactions never wait for each other's
// row locks there, and every user row is still updated once per batch.
// Only pool rows (by project) are shared; every writer updates them last
// and in project order, so a share waits at most for the other's commit
// and no two writers deadlock.
//
// Exactly once still holds share by share: each transaction records its
// events and what they change, or nothing. The batch is acknowledged only
// when every share has committed; if one fails, the whole batch stays
// pending and is applied again, and the shares already committed find
// their events in the ledger (the COPY meets their ids) and change
// nothing twice.

// maxWriters bounds ReconcilerConfig.Writers: each writer holds a Postgres
// connection while a batch is written.
const maxWriters = 8

// storeShares writes events in up to Writers transactions at once and
// returns the entries Postgres refused (see store) and the highest ledger
// sequence value the transactions read. Any error is returned after every
// share has finished, so that nothing of the batch is still being written
// when the caller retries it.
func (r *Reconciler) storeShares(ctx context.Context, ids []string, events []Event) ([]letter, int64, error) {
	shares := splitByUser(ids, events, r.cfg.Writers)
	if len(shares) == 1 {
		return r.store(ctx, ids, events)
	}
	type result struct {
		refused []letter
		seq     int64
		err     error
	}
	results := make(chan result, len(shares))
	for _, sh := range shares {
		go func() {
			refused, seq, err := r.store(ctx, sh.ids, sh.events)
			results <- result{refused, seq, err}
		}()
	}
	var refused []letter
	var seq int64
	var errs []error
	for range shares {
		res := <-results
		refused, seq = append(refused, res.refused...), max(seq, res.seq)
		if res.err != nil {
			errs = append(errs, res.err)
		}
	}
	if len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	return refused, seq, nil
}

// share is the events of one writer, with their entry ids.
type share struct {
	ids    []string
	events []Event
}

// splitByUser deals events into up to n shares by user id (events without
// a user go with user 0's share), keeping their order within each share.
// Fewer, down to one, when the batch is small: a transaction costs a
// commit whatever its size.
func splitByUser(ids []string, events []Event, n int) []share {
	n = min(n, max(1, len(events)/minShare))
	if n == 1 {
		return []share{{ids, events}}
	}
	shares := make([]share, n)
	for i := range shares {
		shares[i] = share{make([]string, 0, len(events)/n+len(events)/8), make([]Event, 0, len(events)/n+len(events)/8)}
	}
	for i := range events {
		k := events[i].UserID % int64(n)
		if k < 0 {
			k = -k
		}
		sh := &shares[k]
		sh.ids, sh.events = append(sh.ids, ids[i]), append(sh.events, events[i])
	}
	out := shares[:0]
	for _, sh := range shares {
		if len(sh.events) > 0 {
			out = append(out, sh)
		}
	}
	return out
}

// minShare is the fewest events worth a transaction of their own.
const minShare = 1000
