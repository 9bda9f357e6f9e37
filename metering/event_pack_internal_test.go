package metering

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The packed entry's encoding on its own (event_pack.go): what packUses
// writes, unpack reads back byte for byte, whatever the ids and labels
// hold; and a pack that is not exactly what packUses writes is refused
// whole, never read as other events.

// hostileLabels are request labels that look like the encoding itself, or
// that Postgres could not store as they are.
var hostileLabels = []string{"", "0:", "3:abc", "12:x:y", ":", "9999999999:", "a\x00b", "\xff\xfe", "ü:1:2",
	strings.Repeat("7:", 300)}

func packedFieldsOf(ev string, n int, extra ...string) streamFields {
	return append(streamFields{eventKind, KindUsage, eventUser, "7", eventUserName, "ann:1",
		eventPackedCount, strconv.Itoa(n), eventPacked, ev}, extra...)
}

func unpackAll(t *testing.T, f streamFields) []Event {
	t.Helper()
	var out []Event
	require.NoError(t, unpack(f, func(i int, ev Event, err error) {
		require.NoError(t, err, "event %d", i)
		require.Len(t, out, i)
		out = append(out, ev)
	}))
	return out
}

func TestPackedEventsReadBackAsWritten(t *testing.T) {
	var uses []leaseUse
	for i, l := range hostileLabels {
		uses = append(uses, leaseUse{EventID: "1:" + l, AtMs: 1772452800000 + int64(i), Cost: Credits(i * 1000), Request: l})
	}
	got := unpackAll(t, packedFieldsOf(packUses(uses), len(uses), eventProject, "3", eventProjectName, "p"))
	require.Len(t, got, len(uses))
	for i, u := range uses {
		ev := got[i]
		require.Equal(t, u.EventID, ev.ID)
		require.Equal(t, u.Request, ev.Request, "label %q", u.Request)
		require.Equal(t, u.AtMs, ev.At.UnixMilli())
		require.Equal(t, u.Cost, ev.Cost)
		require.Equal(t, KindUsage, ev.Kind)
		require.Equal(t, int64(7), ev.UserID)
		require.Equal(t, "ann:1", ev.Username)
		require.Equal(t, int64(3), ev.ProjectID)
		require.Equal(t, "p", ev.ProjectName)
		require.False(t, ev.HasDetail)
	}
}

func TestMalformedPacksAreRefusedWhole(t *testing.T) {
	one := packUses([]leaseUse{{EventID: "e1", AtMs: 5, Cost: 10, Request: "GET /"}})
	cases := map[string]streamFields{
		"count too high":         packedFieldsOf(one, 2),
		"count zero":             packedFieldsOf("", 0),
		"count not a number":     packedFieldsOf(one, 1)[:6:6],
		"trailing bytes":         packedFieldsOf(one+"1", 1),
		"an item cut short":      packedFieldsOf(one[:len(one)-1], 1),
		"a length with a sign":   packedFieldsOf("+2:e1"+one[5:], 1),
		"a leading zero":         packedFieldsOf("02:e1"+one[5:], 1),
		"a length too long":      packedFieldsOf("9999999999:x", 1),
		"no colon":               packedFieldsOf("2e1", 1),
		"a shared id":            packedFieldsOf(one, 1, eventID, "x"),
		"a shared time":          packedFieldsOf(one, 1, eventTime, "1"),
		"a shared cost":          packedFieldsOf(one, 1, eventCost, "1"),
		"a shared empty request": packedFieldsOf(one, 1, eventRequest, ""),
		"a bad shared user":      append(packedFieldsOf(one, 1), eventUser, "x"),
		"no kind":                packedFieldsOf(one, 1)[2:],
	}
	cases["count not a number"] = append(cases["count not a number"], eventPackedCount, "one", eventPacked, one)
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			called := false
			err := unpack(f, func(int, Event, error) { called = true })
			require.Error(t, err)
			require.False(t, called, "nothing of a malformed pack is read as events")
		})
	}
}

// An event whose own values are wrong is reported alone; the others read.
func TestPackedEventWithBadValuesIsReportedAlone(t *testing.T) {
	pack := packUses([]leaseUse{{EventID: "e1", AtMs: 5, Cost: 10}}) + "2:e21:x2:103:GET" + packUses([]leaseUse{{EventID: "", AtMs: 5}})
	var errs []string
	require.NoError(t, unpack(packedFieldsOf(pack, 3), func(i int, ev Event, err error) {
		if err != nil {
			errs = append(errs, strconv.Itoa(i)+": "+err.Error())
		}
	}))
	require.Equal(t, []string{`1: field t="x": strconv.ParseInt: parsing "x": invalid syntax`, "2: event without id"}, errs)
	ev, err := packedEventAt(packedFieldsOf(pack, 3), 0)
	require.NoError(t, err)
	require.Equal(t, "e1", ev.ID)
	_, err = packedEventAt(packedFieldsOf(pack, 3), 3)
	require.ErrorContains(t, err, "no event 3")
}

// Any bytes as a pack: unpack never panics, and what it reads as events
// packs back to exactly those bytes (no two packs read alike).
func FuzzUnpack(f *testing.F) {
	f.Add(packUses([]leaseUse{{EventID: "a", AtMs: 1, Cost: 2, Request: "3:x"}}), 1)
	f.Add("1:a1:11:20:", 1)
	f.Add("0:0:0:0:0:0:0:0:", 2)
	f.Fuzz(func(t *testing.T, pack string, n int) {
		var uses []leaseUse
		err := unpack(packedFieldsOf(pack, n), func(_ int, ev Event, err error) {
			if err == nil {
				uses = append(uses, leaseUse{EventID: ev.ID, AtMs: ev.At.UnixMilli(), Cost: ev.Cost, Request: ev.Request})
			}
		})
		if err != nil || len(uses) != n {
			return // refused, or an event with bad values
		}
		if again := packUses(uses); again != pack {
			// Numbers may be written another way ("+1", "01") and still
			// parse: the items must then differ only there.
			var evs []Event
			require.NoError(t, unpack(packedFieldsOf(again, n), func(_ int, ev Event, err error) {
				require.NoError(t, err)
				evs = append(evs, ev)
			}))
			for i := range evs {
				require.Equal(t, uses[i].EventID, evs[i].ID)
				require.Equal(t, uses[i].Request, evs[i].Request)
			}
		}
	})
}
