package metering

import (
	"cmp"
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Dead letters: stream entries the reconciler can never record in
// Postgres (malformed, or refused by Postgres for what they contain) are
// moved to a stream of their own with the reason, so that one bad entry
// cannot stop the ledger for everyone. A dead-lettered entry that moves a
// balance means Postgres lacks a change Redis has: an admin must look.

var deadLetterScript = mustScript("deadletter.lua")

// deadFieldPrefix marks a dead letter's copy of the entry's fields
// (deadletter.lua), apart from its own fields entry, reason and consumer.
const deadFieldPrefix = "f:"

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	// ID is the dead letter's own stream id (the listing's cursor).
	ID string
	// At is when it was dead-lettered.
	At time.Time
	// Entry is the event stream id the entry had ("" for dead letters
	// written before reasons were recorded).
	Entry    string
	Reason   string
	Consumer string
	// Index is the position in a packed entry (event_pack.go) of the
	// event dead-lettered alone, -1 when the entry is dead-lettered whole.
	Index int
	// Fields are the entry's fields as written to the event stream (a
	// packed entry's: all its events').
	Fields map[string]string
	// Event is Fields decoded (the event at Index of a packed entry), nil
	// when they do not decode (a packed entry dead-lettered whole).
	Event *Event
	// Money: the entry changes a balance, which Postgres therefore lacks.
	Money bool
}

// letter is an entry to dead-letter: its id, the position of the event in
// a packed entry that is dead-lettered alone (wholeEntry: the entry), why,
// and for the log its event id and whether it changes a balance (deleted:
// the entry was gone from the stream before it was read, so neither is
// known).
type letter struct {
	id      string
	index   int
	reason  string
	deleted bool
	event   string
	money   bool
}

// moneyFields are the stream fields of the balance deltas.
var moneyFields = []string{eventAllowance, eventPool, eventAwarded, eventPurchased, eventPoolUsed}

// movesMoney reports whether an entry's fields change a balance.
func movesMoney(fields streamFields) bool {
	for _, f := range moneyFields {
		if s, _ := fields.get(f); s != "" && s != "0" {
			return true
		}
	}
	return false
}

// isDataError reports whether Postgres refused rows for what they contain
// (SQLSTATE class 22 data exception, 23 integrity constraint violation):
// the same rows will be refused again, so retrying cannot help. Every
// other error (connection, availability, locks, timeouts, a missing
// migration) is retried with backoff, since it is no fault of the rows.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// deadLetter moves letters to the dead-letter stream and acknowledges
// them, logging each it moved: a letter another consumer claimed meanwhile
// is left to that consumer (deadletter.lua).
func (r *shardReconciler) deadLetter(ctx context.Context, letters []letter) error {
	if len(letters) == 0 {
		return nil
	}
	args := make([]any, 0, 2+3*len(letters))
	args = append(args, r.cfg.Group, r.cfg.Consumer)
	for _, l := range letters {
		index := ""
		if l.index != wholeEntry {
			index = strconv.Itoa(l.index)
		}
		args = append(args, l.id, index, CleanText(l.reason, MaxNoteLength))
	}
	ids, err := deadLetterScript.Run(ctx, r.e.rdb, []string{r.shard.Events(), r.shard.DeadLetters()}, args...).StringSlice()
	if err != nil {
		return unavailable(err)
	}
	moved := make(map[string]bool, len(ids))
	for _, id := range ids {
		moved[id] = true
	}
	for _, l := range letters {
		if !moved[l.id] {
			continue
		}
		fields := []zap.Field{zap.String("entry", l.id), zap.String("reason", l.reason),
			zap.String("dead_letters", r.shard.DeadLetters())}
		if l.index != wholeEntry {
			fields = append(fields, zap.Int("index", l.index))
		}
		switch {
		case l.deleted:
			r.log.Error("stream entry was deleted before it was reconciled; its event is lost", fields...)
		case l.money:
			r.log.Error("balance change dead-lettered: Redis has it, the Postgres ledger does not; record it by hand",
				append(fields, zap.String("event", CleanText(l.event, maxEventID)))...)
		default:
			r.log.Error("event dead-lettered", fields...)
		}
	}
	return nil
}

// DeadLetterCount is how many entries the dead-letter streams hold.
func (e *Engine) DeadLetterCount(ctx context.Context) (int64, error) {
	total := int64(0)
	for _, sh := range e.keys.Shards() {
		n, err := e.rdb.XLen(ctx, sh.DeadLetters()).Result()
		if err != nil {
			return 0, unavailable(err)
		}
		total += n
	}
	return total, nil
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// ListDeadLetters returns up to limit dead letters, newest first, older
// than the cursor before ("" for the newest), and the cursor of the next
// page ("" when this is the last). With several shards their streams are
// merged, newest first.
func (e *Engine) ListDeadLetters(ctx context.Context, limit int, before string) ([]DeadLetter, string, error) {
	if limit < 1 {
		return nil, "", invalid("limit", "must be positive")
	}
	end := "+"
	if before != "" {
		if !streamID.MatchString(before) {
			return nil, "", invalid("cursor", "is not a cursor this list returned")
		}
		end = "(" + before
	}
	var msgs []redis.XMessage
	for _, sh := range e.keys.Shards() {
		m, err := e.rdb.XRevRangeN(ctx, sh.DeadLetters(), end, "-", int64(limit)+1).Result()
		if err != nil {
			return nil, "", unavailable(err)
		}
		msgs = append(msgs, m...)
	}
	if len(e.keys.Shards()) > 1 {
		slices.SortStableFunc(msgs, func(a, b redis.XMessage) int { return compareStreamIDs(b.ID, a.ID) })
	}
	next := ""
	if len(msgs) > limit {
		msgs = msgs[:limit]
		next = msgs[limit-1].ID
	}
	out := make([]DeadLetter, len(msgs))
	for i, m := range msgs {
		out[i] = decodeDeadLetter(m)
	}
	return out, next, nil
}

// decodeDeadLetter reads a dead letter. One written before dead letters
// had a reason is a bare copy of a malformed entry's fields.
func decodeDeadLetter(m redis.XMessage) DeadLetter {
	d := DeadLetter{ID: m.ID, At: streamTime(m.ID), Index: wholeEntry, Fields: map[string]string{}}
	_, current := m.Values["reason"]
	values := make(map[string]any, len(m.Values))
	for k, v := range m.Values {
		s, _ := v.(string)
		name, isField := strings.CutPrefix(k, deadFieldPrefix)
		switch {
		case !current:
			name, isField = k, true
		case k == "entry":
			d.Entry = s
		case k == "reason":
			d.Reason = s
		case k == "consumer":
			d.Consumer = s
		case k == "index":
			if i, err := strconv.Atoi(s); err == nil && i >= 0 {
				d.Index = i
			}
		}
		if isField {
			d.Fields[name] = s
			values[name] = s
		}
	}
	if !current {
		d.Reason = "malformed event (dead-lettered before reasons were recorded)"
	}
	fields := fieldsOf(values)
	var ev Event
	var err error
	switch {
	case d.Index != wholeEntry:
		ev, err = packedEventAt(fields, d.Index)
	case isPacked(fields):
		err = errors.New("a packed entry dead-lettered whole")
	default:
		ev, err = parseStreamEvent(fields)
	}
	if err == nil {
		d.Event = &ev
	}
	d.Money = movesMoney(fields)
	return d
}

// compareStreamIDs orders two stream ids (ms-seq) as Redis does.
func compareStreamIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	an, _ := strconv.ParseUint(am, 10, 64)
	bn, _ := strconv.ParseUint(bm, 10, 64)
	if c := cmp.Compare(an, bn); c != 0 {
		return c
	}
	an, _ = strconv.ParseUint(as, 10, 64)
	bn, _ = strconv.ParseUint(bs, 10, 64)
	return cmp.Compare(an, bn)
}

// streamTime is the time a stream id was assigned (Redis's clock); zero
// for an id that is not one.
func streamTime(id string) time.Time {
	ms, err := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
