package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reading the event stream without go-redis's per-entry maps. XReadGroup
// decodes every entry into a map[string]any (a map, its buckets and a boxed
// value per field), which was the reconciler's largest Go cost
// (docs/benchmarks.md). A plain command (redis.NewCmd) hands back the reply
// as nested slices instead; its strings are read into field/value pairs
// that parseStreamEvent walks once.

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
func (r *Reconciler) readGroup(ctx context.Context, from string, block time.Duration, count int) ([]streamEntry, error) {
	stream := r.e.keys.Events()
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
