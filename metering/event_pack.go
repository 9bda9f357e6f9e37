package metering

import (
	"errors"
	"fmt"
	"strconv"
)

// Packed stream entries: one entry carrying the usage events of many
// requests (a credit lease's flush, lease_flush.lua), so that Redis appends,
// and the reconciler reads, acknowledges and trims, one entry per flush
// instead of one per request (docs/benchmarks.md).
//
// A packed entry has the fields every event of it shares once, under their
// usual names (k, u, un, p, pn: eventKind …), plus
//   - n  (eventPackedCount): how many events it holds, 1 or more;
//   - ev (eventPacked): the events, one after the other, each as four
//     items, its id, time (Unix ms), cost and request label, and each item
//     as its length in bytes (decimal), ':' and its bytes.
//
// Every item is length-prefixed, so any bytes (separators, digits, NUL,
// invalid UTF-8) in an id or a label read back as written, and no field
// name appears twice (go-redis reads entries into maps in some paths,
// where a repeated name would be lost). The fields an event of the pack
// has of its own (id, t, c, rq) must not also be shared ones: such an
// entry is malformed, as is one whose items do not parse or whose count
// differs from n. Such an entry is dead-lettered whole; an event whose own
// values are wrong (a time or cost that is not a number, an id that is no
// printable text) is dead-lettered alone and the others are recorded
// (decodeEntries).

// maxPackedEvents is the most events one flush packs into one entry: a
// flush of more makes several entries (leaseTable.flush). A reconciler
// sizes its first read by it (readBatch, chunkFor).
const maxPackedEvents = 256

// packUses encodes uses as the ev field of a packed entry.
func packUses(uses []leaseUse) string {
	n := 0
	for i := range uses {
		n += len(uses[i].EventID) + len(uses[i].Request) + 48
	}
	b := make([]byte, 0, n)
	for i := range uses {
		u := &uses[i]
		b = appendPackItem(b, u.EventID)
		b = appendPackInt(b, u.AtMs)
		b = appendPackInt(b, int64(u.Cost))
		b = appendPackItem(b, u.Request)
	}
	return string(b)
}

func appendPackItem(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// appendPackInt appends v as an item, its digits without a string.
func appendPackInt(b []byte, v int64) []byte {
	var num [20]byte
	d := strconv.AppendInt(num[:0], v, 10)
	b = strconv.AppendInt(b, int64(len(d)), 10)
	b = append(b, ':')
	return append(b, d...)
}

// maxPackItemDigits bounds an item's length as written: more digits are
// no length any writer produced (and could overflow).
const maxPackItemDigits = 9

// nextPackItem reads one item from the front of s and returns it and the rest.
func nextPackItem(s string) (item, rest string, err error) {
	colon := -1
	for i := 0; i < len(s) && i <= maxPackItemDigits; i++ {
		if s[i] == ':' {
			colon = i
			break
		}
		if s[i] < '0' || s[i] > '9' {
			return "", "", fmt.Errorf("packed events: %q is no item length", cut(s, 12))
		}
	}
	if colon <= 0 || colon > 1 && s[0] == '0' {
		return "", "", fmt.Errorf("packed events: %q is no item length", cut(s, 12))
	}
	n, _ := strconv.Atoi(s[:colon])
	if n > len(s)-colon-1 {
		return "", "", fmt.Errorf("packed events: an item of %d bytes where %d are left", n, len(s)-colon-1)
	}
	return s[colon+1 : colon+1+n], s[colon+1+n:], nil
}

func cut(s string, n int) string { return s[:min(len(s), n)] }

// packedEvent is one event's own items in a packed entry.
type packedEvent struct{ id, t, c, rq string }

// nextPackedEvent reads one event's four items from the front of s.
func nextPackedEvent(s string) (packedEvent, string, error) {
	var p packedEvent
	var err error
	for _, dst := range [4]*string{&p.id, &p.t, &p.c, &p.rq} {
		if *dst, s, err = nextPackItem(s); err != nil {
			return p, s, err
		}
	}
	return p, s, nil
}

// isPacked reports whether an entry's fields are a packed entry's.
func isPacked(f streamFields) bool {
	_, ok := f.get(eventPacked)
	return ok
}

// packedCount is how many events a packed entry says it holds; 1 for any
// other entry, and for a packed one whose count is no positive number (it
// is malformed, and dead-lettered as one).
func packedCount(f streamFields) int {
	s, ok := f.get(eventPackedCount)
	if !ok {
		return 1
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return 1
}

// errPackedOwnField: a shared field that each packed event has of its own.
var errPackedOwnField = errors.New("packed entry with a shared id, t, c or rq field")

// unpack decodes a packed entry: it checks the whole entry first (the
// shared fields, every item, the count) and returns that error alone, so
// nothing of a malformed entry is recorded; then calls each with every
// event in order and the error that event alone has.
func unpack(f streamFields, each func(i int, ev Event, err error)) error {
	for _, name := range [...]string{eventID, eventTime, eventCost, eventRequest} {
		if _, ok := f.get(name); ok {
			return errPackedOwnField
		}
	}
	var shared rawEvent
	shared.pick(f)
	tmpl, err := shared.decode()
	if err != nil {
		return fmt.Errorf("shared %w", err)
	}
	if tmpl.Kind == "" {
		return fmt.Errorf("packed entry without a kind")
	}
	pack, _ := f.get(eventPacked)
	countText, _ := f.get(eventPackedCount)
	count, err := strconv.Atoi(countText)
	if err != nil || count < 1 {
		return fmt.Errorf("packed entry: count %q is no positive number", cut(countText, 24))
	}
	n := 0
	for rest := pack; rest != ""; n++ {
		if _, rest, err = nextPackedEvent(rest); err != nil {
			return fmt.Errorf("event %d: %w", n, err)
		}
	}
	if n != count {
		return fmt.Errorf("packed entry holds %d events, its count says %d", n, count)
	}
	for i, rest := 0, pack; rest != ""; i++ {
		var p packedEvent
		p, rest, _ = nextPackedEvent(rest)
		r := shared
		r.id, r.t, r.c, r.rq = p.id, p.t, p.c, p.rq
		ev, err := r.decode()
		if err == nil && ev.ID == "" {
			err = errors.New("event without id")
		}
		each(i, ev, err)
	}
	return nil
}

// packedEventAt decodes event i of a packed entry (a dead letter's).
func packedEventAt(f streamFields, i int) (ev Event, err error) {
	err = fmt.Errorf("packed entry has no event %d", i)
	if perr := unpack(f, func(j int, e Event, eerr error) {
		if j == i {
			ev, err = e, eerr
		}
	}); perr != nil {
		return Event{}, perr
	}
	return ev, err
}
