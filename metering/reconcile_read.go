package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reading the event stream: batches sized in events (readBatch), read
// without go-redis's per-entry maps. XReadGroup decodes every entry into a
// map[string]any (a map, its buckets and a boxed value per field), which
// was the reconciler's largest Go cost (docs/benchmarks.md). A plain
// command (redis.NewCmd) hands back the reply as nested slices instead;
// its strings are read into field/value pairs that parseStreamEvent (or
// unpack, for a packed entry) walks once.

// streamEntry is one entry as read from the stream. An entry deleted while
// it was pending (an outside XDEL) comes back without fields.
type streamEntry struct {
	id      string
	fields  streamFields
	deleted bool
}

// entriesOf turns go-redis's decoded entries (XAUTOCLAIM, blocking reads,
// the healer's XRANGE) into stream entries.
func entriesOf(msgs []redis.XMessage) []streamEntry {
	out := make([]streamEntry, len(msgs))
	for i, m := range msgs {
		out[i] = streamEntry{id: m.ID, fields: fieldsOf(m.Values), deleted: m.Values == nil}
	}
	return out
}

// readGroup runs XREADGROUP for count entries of the event stream from
// from ("0": this consumer's pending entries after that id; ">": new ones).
// A read that waits (block >= 0) goes through go-redis's typed command,
// which extends the connection's read deadline by the wait; it only runs
// once the stream is drained, so its entries are few.
func (r *shardReconciler) readGroup(ctx context.Context, from string, block time.Duration, count int) ([]streamEntry, error) {
	stream := r.shard.Events()
	if block >= 0 {
		res, err := r.e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.cfg.Group, Consumer: r.cfg.Consumer,
			Streams: []string{stream, from}, Count: int64(count), Block: block}).Result()
		if errors.Is(err, redis.Nil) || err == nil && len(res) == 0 {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return entriesOf(res[0].Messages), nil
	}
	cmd := redis.NewCmd(ctx, "xreadgroup", "group", r.cfg.Group, r.cfg.Consumer, "count", count, "streams", stream, from)
	cmd.SetFirstKeyPos(7)
	err := r.e.rdb.Process(ctx, cmd)
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseReadReply(cmd.Val(), stream)
}

// parseReadReply reads an XREADGROUP reply for one stream: an array of
// [stream, entries] (RESP2) or a map stream → entries (RESP3).
func parseReadReply(reply any, stream string) ([]streamEntry, error) {
	var entries any
	switch v := reply.(type) {
	case nil:
		return nil, nil
	case map[any]any:
		entries = v[stream]
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		pair, ok := v[0].([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("xreadgroup: unexpected reply %T", v[0])
		}
		entries = pair[1]
	default:
		return nil, fmt.Errorf("xreadgroup: unexpected reply %T", reply)
	}
	list, ok := entries.([]any)
	if !ok {
		if entries == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("xreadgroup: unexpected entries %T", entries)
	}
	return parseEntries(list)
}

// parseEntries reads [id, [field, value, …] | nil] pairs. The fields of
// entries share backing arrays sized for the entries left, so a read
// allocates a few slices rather than one per entry.
func parseEntries(list []any) ([]streamEntry, error) {
	out := make([]streamEntry, 0, len(list))
	var backing []string
	for _, item := range list {
		e, ok := item.([]any)
		if !ok || len(e) < 2 {
			return nil, fmt.Errorf("xreadgroup: unexpected entry %T", item)
		}
		id, ok := e[0].(string)
		if !ok {
			return nil, fmt.Errorf("xreadgroup: unexpected entry id %T", e[0])
		}
		if e[1] == nil {
			out = append(out, streamEntry{id: id, deleted: true})
			continue
		}
		kv, ok := e[1].([]any)
		if !ok {
			return nil, fmt.Errorf("xreadgroup: unexpected fields %T", e[1])
		}
		if cap(backing)-len(backing) < len(kv) {
			backing = make([]string, 0, max(len(kv)*(len(list)-len(out)), len(kv)))
		}
		start := len(backing)
		for _, f := range kv {
			s, _ := f.(string)
			backing = append(backing, s)
		}
		out = append(out, streamEntry{id: id, fields: backing[start:len(backing):len(backing)]})
	}
	return out, nil
}

// readChunk is the most entries one Redis command reads or acknowledges.
// Redis runs one command at a time: a reply of 5,000 entries keeps it busy
// a few milliseconds, which every request arriving meanwhile waits out.
const readChunk = 5000

// readBatch reads entries holding up to BatchSize events, in chunks of at
// most readChunk entries: this consumer's pending entries (from "0", or
// after an entry id; each chunk after the last entry of the one before)
// or new ones (">"); with thenNew, new ones once the pending are read.
// Only the first read waits (block).
//
// A packed entry holds many events (event_pack.go), and a read counts
// entries: each chunk asks for as many entries as the events still wanted
// would fill at the last read's events per entry (maxPackedEvents before
// any read). Entries read beyond BatchSize events (the entries grew
// denser) are not in the batch: they stay pending for this consumer, and
// the next batch reads them first (readAhead, or "0" after a failure).
// After an error the entries read so far stay pending for this consumer
// and are read again from "0".
func (r *shardReconciler) readBatch(ctx context.Context, from string, block time.Duration, thenNew bool) ([]streamEntry, readState, error) {
	var all []streamEntry
	events := 0
	for {
		room := r.cfg.BatchSize - events
		count := r.chunkFor(room)
		entries, err := r.readGroup(ctx, from, block, count)
		if err != nil {
			return nil, readState{}, err
		}
		entries, n, st := r.fit(entries, room, events == 0)
		events += n
		all = append(all, entries...)
		if st.full {
			return all, st, nil
		}
		if len(entries) < count {
			if from == ">" || !thenNew {
				return all, st, nil
			}
			from = ">"
		} else if from != ">" {
			from = entries[len(entries)-1].id
		}
		block = -1
	}
}

// readState is how a read of a batch ended. full: it reached BatchSize
// events (more are probably waiting). left: entries read after the last
// one kept did not fit, and stay pending for this consumer.
type readState struct{ full, left bool }

// chunkFor is how many entries to read for room events.
func (r *shardReconciler) chunkFor(room int) int {
	per := r.perEntry
	if per == 0 {
		per = maxPackedEvents
	}
	return max(1, min(readChunk, room/per))
}

// fit keeps the entries (from the first) that fit in room events and
// returns them with their events; it learns the events per entry of all
// of them for the next read. The first entry of an empty batch always
// fits, however many events it holds.
func (r *shardReconciler) fit(entries []streamEntry, room int, empty bool) ([]streamEntry, int, readState) {
	take, events, read := len(entries), 0, 0
	for i := range entries {
		n := 1
		if !entries[i].deleted {
			n = packedCount(entries[i].fields)
		}
		if take == len(entries) && events+n > room && (i > 0 || !empty) {
			take = i
		}
		if take == len(entries) {
			events += n
		}
		read += n
	}
	if len(entries) > 0 {
		r.perEntry = max(1, (read+len(entries)-1)/len(entries))
	}
	left := take < len(entries)
	return entries[:take], events, readState{full: left || events >= room, left: left}
}
