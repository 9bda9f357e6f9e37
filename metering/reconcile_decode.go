package metering

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Decoding what the reconciler read: entries into the events to record,
// each with where it came from, and the entries (or events of packed
// entries, event_pack.go) to dead-letter.

// batch is the entries of one round, decoded: the events to record, each
// with where it came from, the entries to acknowledge once they are
// recorded, and the entries (or events of packed ones) to dead-letter.
// The entries' fields are not kept: a batch waits while the one before it
// is written, and thousands of small strings held that long cost the
// garbage collector more than anything else the reconciler keeps.
type batch struct {
	handled int      // events recorded or dead-lettered (an entry dead-lettered whole: one)
	entries []string // entries with events to record, each once
	sources []eventSource
	events  []Event
	letters []letter
	// full: the read stopped at BatchSize events (more are probably
	// waiting). left: entries read after the batch's last one, which did
	// not fit in it and stay pending for this consumer (readBatch).
	full, left bool
	last       string // the last entry's id
}

// eventSource is where an event was read: its entry and, in a packed
// entry, its position (wholeEntry for a single event's entry).
type eventSource struct {
	entry string
	index int
}

// wholeEntry is eventSource.index and letter.index for an entry as a whole.
const wholeEntry = -1

// decode turns the entries read into a batch (nil for none), texts
// cleaned once here so that a retry of the batch does not warn again.
func (r *shardReconciler) decode(entries []streamEntry, st readState) *batch {
	if len(entries) == 0 {
		return nil
	}
	b := decodeEntries(entries)
	b.full, b.left, b.last = st.full, st.left, entries[len(entries)-1].id
	b.events = r.e.storableTexts(b.events)
	return b
}

// decodeBatch is decodeEntries for entries go-redis decoded (the healer's
// XRANGE).
func decodeBatch(msgs []redis.XMessage) (sources []eventSource, events []Event, letters []letter) {
	b := decodeEntries(entriesOf(msgs))
	return b.sources, b.events, b.letters
}

// decodeEntries splits entries into the events to record (with where each
// came from) and the entries to dead-letter: deleted from the stream (only
// an outside XDEL or XTRIM does that: ack.lua never trims pending
// entries), malformed, or not storable (checkRow). A packed entry
// (event_pack.go) that is malformed as a whole is dead-lettered whole; an
// event of it that is malformed alone is dead-lettered alone (its position
// in the entry with it), and the entry's other events are recorded.
func decodeEntries(entries []streamEntry) *batch {
	n := len(entries)
	b := &batch{entries: make([]string, 0, n), sources: make([]eventSource, 0, n), events: make([]Event, 0, n)}
	for _, m := range entries {
		switch {
		case m.deleted:
			b.letters = append(b.letters, letter{id: m.id, index: wholeEntry,
				reason: "deleted from the stream before it was reconciled", deleted: true})
		case isPacked(m.fields):
			b.addPacked(m)
		default:
			ev, err := parseStreamEvent(m.fields)
			if err == nil {
				err = checkRow(&ev)
			}
			if err != nil {
				event, _ := m.fields.get(eventID)
				b.letters = append(b.letters, letter{id: m.id, index: wholeEntry, reason: "malformed event: " + err.Error(),
					event: event, money: movesMoney(m.fields)})
				continue
			}
			b.entries = append(b.entries, m.id)
			b.sources, b.events = append(b.sources, eventSource{m.id, wholeEntry}), append(b.events, ev)
		}
	}
	b.handled = len(b.events) + len(b.letters)
	return b
}

// addPacked adds a packed entry's events to the batch (decodeEntries).
func (b *batch) addPacked(m streamEntry) {
	money, recorded := movesMoney(m.fields), false
	err := unpack(m.fields, func(i int, ev Event, err error) {
		if err == nil {
			err = checkRow(&ev)
		}
		if err != nil {
			b.letters = append(b.letters, letter{id: m.id, index: i,
				reason: fmt.Sprintf("malformed event %d of a packed entry: %v", i, err), event: ev.ID, money: money})
			return
		}
		b.sources, b.events = append(b.sources, eventSource{m.id, i}), append(b.events, ev)
		recorded = true
	})
	switch {
	case err != nil:
		b.letters = append(b.letters, letter{id: m.id, index: wholeEntry, reason: "malformed packed entry: " + err.Error(), money: money})
	case recorded:
		b.entries = append(b.entries, m.id)
	}
}
