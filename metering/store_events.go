package metering

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

var eventCopyColumns = []string{"event_id", "kind", "occurred_at", "user_id", "username",
	"project_id", "project_name", "cost", "d_allowance", "d_pool", "d_awarded", "d_purchased",
	"d_pool_used", "allowance_period", "grant_month", "request", "actor", "note",
	"model", "input_units", "output_units", "reserved", "upstream_status", "duration_ms",
	"shortfall", "forfeited", "served_model"}

var eventColumnList = strings.Join(eventCopyColumns, ", ")

// insertNewEventsSQL inserts the staged events the ledger does not hold yet
// and names them. A replayed event conflicts on its id and is not returned.
var insertNewEventsSQL = `INSERT INTO events (` + eventColumnList + `)
	SELECT ` + eventColumnList + ` FROM event_staging
	ON CONFLICT (event_id) DO NOTHING
	RETURNING event_id`

// applyEvents records events in the ledger and updates balances, parked
// allowances and the daily usage rollup from exactly the events that were
// new, in the caller's transaction: each event counts at most once however
// often it is applied. It returns how many were new, and the ledger
// sequence's value (see Reconciler.apply). Texts Postgres would refuse are
// cleaned first (storableTexts), so a text never costs the ledger a money
// event.
func (e *Engine) applyEvents(ctx context.Context, tx pgx.Tx, events []Event) (int64, error) {
	n, _, err := applyStorableEvents(ctx, tx, e.storableTexts(events))
	return n, err
}

// applyStorableEvents is applyEvents for events whose texts are storable
// already (the reconciler cleans a batch once, when it decodes it).
func applyStorableEvents(ctx context.Context, tx pgx.Tx, events []Event) (n, seq int64, err error) {
	if len(events) == 0 {
		return 0, 0, nil
	}
	fresh, err := insertNewEvents(ctx, tx, events)
	if err != nil {
		return 0, 0, err
	}
	seq, err = applyDeltas(ctx, tx, fresh)
	return int64(len(fresh)), seq, err
}

// insertNewEvents inserts the events the ledger does not hold yet and
// returns them. Usually none is held: the reconciler meets an event again
// only after a crash between commit and acknowledgement, for an admin
// write (which records its own event before the reconciler reads it), or
// when an entry is in the stream twice. So it first COPYs the batch
// straight into events under a savepoint; only when that meets an event
// already there, or one id twice (the primary key refuses it), does it
// fall back to a staging table and INSERT ... ON CONFLICT DO NOTHING
// RETURNING, which names the new ones and lets a concurrent writer of the
// same event win cleanly. Copies within the batch are dropped only then:
// a batch the COPY took has none.
func insertNewEvents(ctx context.Context, tx pgx.Tx, events []Event) ([]Event, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	_, err = copyEvents(ctx, sp, "events", events)
	if err == nil {
		return events, sp.Commit(ctx)
	}
	if rbErr := sp.Rollback(ctx); rbErr != nil || !isEventReplay(err) {
		return nil, fmt.Errorf("copy events: %w", err)
	}
	events = uniqueEvents(events)
	// The staging table lives per connection and empties itself at commit.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS event_staging
		(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return nil, fmt.Errorf("staging table: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM event_staging`); err != nil { // an earlier call in this transaction
		return nil, fmt.Errorf("staging table: %w", err)
	}
	if _, err := copyEvents(ctx, tx, "event_staging", events); err != nil {
		return nil, fmt.Errorf("copy events: %w", err)
	}
	rows, err := tx.Query(ctx, insertNewEventsSQL)
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	inserted := make(map[string]bool, len(events))
	var id string
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error { inserted[id] = true; return nil })
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	fresh := make([]Event, 0, len(inserted))
	for _, ev := range events {
		if inserted[ev.ID] {
			fresh = append(fresh, ev)
		}
	}
	return fresh, nil
}

// isEventReplay reports whether err is the ledger refusing an event id it
// already holds (not a trigger or another constraint, which keep their
// meaning: see isDataError).
func isEventReplay(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_pkey"
}

// uniqueEvents drops every event whose id appeared earlier in the batch
// (an entry in the stream twice): the ledger keeps the first copy, and the
// balances must count exactly the copy it keeps.
func uniqueEvents(events []Event) []Event {
	seen := make(map[string]struct{}, len(events))
	out := events
	for i := range events {
		if _, dup := seen[events[i].ID]; dup {
			if &out[0] == &events[0] {
				out = append(make([]Event, 0, len(events)), events[:i]...)
			}
			continue
		}
		seen[events[i].ID] = struct{}{}
		if &out[0] != &events[0] {
			out = append(out, events[i])
		}
	}
	return out
}

// Bounds of the texts only a corrupt event can exceed: names pass ValidName
// (63 bytes), ids are made by EventIDs, kinds are constants.
const (
	maxStoredName = 200
	maxEventID    = 128
	maxEventKind  = 32
)

// storable reports whether Postgres takes s as text within max bytes: valid
// UTF-8 without NUL. (Other control characters are storable; the texts
// admins type keep their line breaks.)
func storable(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// checkRow refuses an event Postgres could never take for a reason other
// than its texts (which storableTexts cleans): an id or kind that is not a
// short printable text (the id is the ledger's idempotency key, so it is
// never altered), a time outside Postgres's range, an upstream status that
// does not fit its int column. Such an event is malformed; it is checked
// in Go because pgx or Postgres would report it in ways hard to tell from
// an outage.
func checkRow(ev *Event) error {
	switch {
	case CleanText(ev.ID, maxEventID) != ev.ID:
		return fmt.Errorf("event id %q is not a printable text of at most %d bytes", CleanText(ev.ID, maxEventID), maxEventID)
	case CleanText(ev.Kind, maxEventKind) != ev.Kind:
		return fmt.Errorf("kind %q is not a printable text of at most %d bytes", CleanText(ev.Kind, maxEventKind), maxEventKind)
	case ev.At.Year() < 1970 || ev.At.Year() > 9999:
		return fmt.Errorf("time %d ms is outside the years 1970 to 9999", ev.At.UnixMilli())
	case ev.UpstreamStatus < math.MinInt32 || ev.UpstreamStatus > math.MaxInt32:
		return fmt.Errorf("upstream status %d does not fit", ev.UpstreamStatus)
	}
	return nil
}

// eventText is one text field of an event, for storableTexts.
type eventText struct {
	name string
	s    *string
	max  int
}

// texts lists ev's text fields, pointing into ev.
func (ev *Event) texts() [7]eventText {
	return [...]eventText{{"username", &ev.Username, maxStoredName}, {"project_name", &ev.ProjectName, maxStoredName},
		{"request", &ev.Request, MaxRequestLabel}, {"actor", &ev.Actor, MaxActorLength},
		{"note", &ev.Note, MaxNoteLength}, {"model", &ev.Model, MaxModelName},
		{"served_model", &ev.ServedModel, MaxModelName}}
}

// storableTexts returns events with every text Postgres would refuse made
// storable by CleanText, logging a warning for each. Gateways and the admin
// API clean or refuse texts before they reach Redis, so this only fires for
// an event written by a buggy or older gateway, or straight into the
// stream; without it one such text would make Postgres refuse the whole
// batch. The caller's slice is left alone: it is copied when something
// changes.
func (e *Engine) storableTexts(events []Event) []Event {
	out := events
	for i := range events {
		for j, f := range events[i].texts() {
			if storable(*f.s, f.max) {
				continue
			}
			if &out[0] == &events[0] {
				out = append([]Event(nil), events...)
			}
			clean := CleanText(*f.s, f.max)
			*out[i].texts()[j].s = clean
			e.log.Warn("event text is not storable in Postgres; recorded cleaned",
				zap.String("event", events[i].ID), zap.String("field", f.name), zap.Int("bytes", len(*f.s)),
				zap.String("recorded", clean))
		}
	}
	return out
}
