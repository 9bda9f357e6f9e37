package metering

import "context"

// Hooks for the tests of packed entries (event_pack.go).

// EntryEventsForTest decodes a stream entry as go-redis read it into its
// events: a packed entry's every event, or the one event of any other.
func EntryEventsForTest(values map[string]any) ([]Event, error) {
	f := fieldsOf(values)
	if !isPacked(f) {
		ev, err := parseStreamEvent(f)
		return []Event{ev}, err
	}
	var out []Event
	var first error
	err := unpack(f, func(_ int, ev Event, err error) {
		out = append(out, ev)
		if first == nil {
			first = err
		}
	})
	if err != nil {
		return nil, err
	}
	return out, first
}

// PackUsesForTest is the ev field lease_flush.lua appends for uses.
func PackUsesForTest(uses ...LeaseUse) string { return packUses(uses) }

// ReplayStreamForTest runs the healer's replay of every shard's whole
// stream into the ledger (heal.go's first step), acknowledging nothing;
// it returns how many events it applied.
func (e *Engine) ReplayStreamForTest(ctx context.Context) (int, error) {
	h := healer{Engine: e, rdb: e.rdb, healing: map[int]bool{}}
	for i := range e.keys.Shards() {
		h.healing[i] = true
	}
	return h.drainStreamToLedger(ctx)
}
