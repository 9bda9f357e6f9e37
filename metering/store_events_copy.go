package metering

import (
	"context"
	"encoding/binary"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// The ledger's COPY in Postgres's binary format, encoded here. pgx's
// CopyFrom takes each row as a []any of boxed values and encodes them
// through its type map one by one: about 15 allocations and 27 type plan
// look-ups per event, the reconciler's largest Go cost after reading
// Redis. The columns and their types are fixed, so the rows are written
// straight into the COPY stream's buffer instead, without allocating.

// copyEvents COPYs events into table (events, or the staging table, which
// has its columns) on tx's connection, and returns how many rows it took.
func copyEvents(ctx context.Context, tx pgx.Tx, table string, events []Event) (int64, error) {
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, &eventCopyReader{events: events},
		"COPY "+table+" ("+eventColumnList+") FROM STDIN (FORMAT binary)")
	return tag.RowsAffected(), err
}

// eventCopyReader is events as a binary COPY stream (eventCopyColumns, in
// that order): header, one tuple per event, trailer.
type eventCopyReader struct {
	events []Event
	next   int  // the next event to encode
	state  int8 // 0 header due, 1 rows, 2 trailer written
	buf    []byte
	off    int // read position in buf
}

// copyHeader: signature, flags (no OIDs), no header extension.
var copyHeader = append([]byte("PGCOPY\n\xff\r\n\x00"), 0, 0, 0, 0, 0, 0, 0, 0)

func (r *eventCopyReader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.state == 2 {
			return 0, io.EOF
		}
		r.fill(len(p))
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill encodes the next rows, about want bytes of them.
func (r *eventCopyReader) fill(want int) {
	r.buf, r.off = r.buf[:0], 0
	if r.state == 0 {
		r.buf = append(r.buf, copyHeader...)
		r.state = 1
	}
	for r.next < len(r.events) && len(r.buf) < want {
		r.buf = appendEventTuple(r.buf, &r.events[r.next])
		r.next++
	}
	if r.next == len(r.events) && len(r.buf) < want {
		r.buf = binary.BigEndian.AppendUint16(r.buf, 0xffff) // trailer: -1
		r.state = 2
	}
}

// postgresEpoch is where binary timestamps count from, in Unix µs.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// appendEventTuple appends e as one tuple of eventCopyColumns. NULL where
// the ledger leaves a column empty: no user or project id 0, no empty
// text, the detail columns only on the events that carry them (units,
// status, duration, shortfall and forfeit on a usage event's settlement).
func appendEventTuple(b []byte, e *Event) []byte {
	usage := e.HasDetail && e.Kind == KindUsage
	b = binary.BigEndian.AppendUint16(b, uint16(len(eventCopyColumns)))
	b = appendText(b, e.ID, true)
	b = appendText(b, e.Kind, true)
	b = appendInt8(b, e.At.UnixMicro()-postgresEpoch, true)
	b = appendInt8(b, e.UserID, e.UserID != 0)
	b = appendText(b, e.Username, e.Username != "")
	b = appendInt8(b, e.ProjectID, e.ProjectID != 0)
	b = appendText(b, e.ProjectName, e.ProjectName != "")
	b = appendInt8(b, int64(e.Cost), true)
	b = appendInt8(b, int64(e.Allowance), true)
	b = appendInt8(b, int64(e.Pool), true)
	b = appendInt8(b, int64(e.Awarded), true)
	b = appendInt8(b, int64(e.Purchased), true)
	b = appendInt8(b, int64(e.PoolUsed), true)
	b = appendInt8(b, e.AllowancePeriod, e.HasPeriod)
	b = appendInt8(b, e.GrantMonth, e.HasGrant)
	b = appendText(b, e.Request, e.Request != "")
	b = appendText(b, e.Actor, e.Actor != "")
	b = appendText(b, e.Note, e.Note != "")
	b = appendText(b, e.Model, e.Model != "")
	b = appendInt8(b, e.InputUnits, usage)
	b = appendInt8(b, e.OutputUnits, usage)
	b = appendInt8(b, int64(e.Reserved), e.HasDetail)
	b = appendInt4(b, int32(e.UpstreamStatus), usage && e.UpstreamStatus >= 0) // checkRow: it fits
	b = appendInt8(b, e.DurationMs, usage)
	b = appendInt8(b, int64(e.Shortfall), usage)
	b = appendInt8(b, int64(e.Forfeited), usage)
	b = appendText(b, e.ServedModel, e.ServedModel != "")
	return b
}

// nullField is a NULL column: length -1.
const nullField = 0xffffffff

func appendText(b []byte, s string, ok bool) []byte {
	if !ok {
		return binary.BigEndian.AppendUint32(b, nullField)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt8(b []byte, v int64, ok bool) []byte {
	if !ok {
		return binary.BigEndian.AppendUint32(b, nullField)
	}
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendInt4(b []byte, v int32, ok bool) []byte {
	if !ok {
		return binary.BigEndian.AppendUint32(b, nullField)
	}
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}
