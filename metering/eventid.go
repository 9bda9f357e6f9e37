package metering

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// EventIDs makes unique event ids: a random per-process prefix and a
// counter. Unlike stream entry ids they survive a Redis that lost its data
// and restarted its clock, and they cost no syscall per request.
type EventIDs struct {
	prefix string
	n      atomic.Uint64
}

func NewEventIDs() *EventIDs {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return &EventIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Next returns a new id such as "9f86d081884c7d65-1a".
func (g *EventIDs) Next() string {
	var buf [40]byte
	b := append(buf[:0], g.prefix...)
	return string(strconv.AppendUint(b, g.n.Add(1), 36))
}
