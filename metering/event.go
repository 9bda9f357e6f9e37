package metering

import (
	"fmt"
	"strconv"
	"time"
)

// Event kinds.
const (
	KindUsage   = "usage"
	KindRefill  = "refill"
	KindGrant   = "grant"
	KindAdjust  = "adjust"
	KindPool    = "pool"
	KindInitial = "initial"
	// KindHold is a reservation's estimate taken from the buckets; the
	// usage event of its settlement gives back or takes the difference.
	KindHold = "hold"
	// KindVoid undoes a fixed-cost charge whose request the gateway
	// refused after all (Redis's answer was lost; see cancel.go): the
	// charge's amounts go back, and its cost is negative.
	KindVoid = "void"
	// KindLease is a credit lease taken by a gateway (lease_take.lua): a
	// hold for the requests it then admits from memory, whose usage
	// events carry their cost without amounts; KindLeaseEnd gives back
	// what the lease did not use (lease_end.lua).
	KindLease    = "lease"
	KindLeaseEnd = "lease_end"
)

// Event is one balance change as appended to the stream by a Lua script and
// recorded in the Postgres ledger. Deltas are signed micro-credits.
type Event struct {
	ID          string
	Kind        string
	At          time.Time
	UserID      int64 // 0: none (pool events)
	Username    string
	ProjectID   int64 // 0: none
	ProjectName string
	Cost        Credits
	Allowance   Credits
	Pool        Credits
	Awarded     Credits
	Purchased   Credits
	PoolUsed    Credits
	// AllowancePeriod is set by refills: the period's start, Unix seconds.
	AllowancePeriod int64
	HasPeriod       bool
	// GrantMonth is set by grants: year*12+month-1.
	GrantMonth int64
	HasGrant   bool
	Request    string
	Actor      string
	Note       string
	// Variable cost: set on hold events and on the usage events that
	// settle them (HasDetail); NULL in the ledger for every other event.
	HasDetail      bool
	Model          string
	InputUnits     int64
	OutputUnits    int64
	Reserved       Credits
	UpstreamStatus int64 // -1: none (hold events, sweeper settlements)
	DurationMs     int64
	Shortfall      Credits
	Forfeited      Credits
	// ServedModel is the model the upstream said it served, on a usage
	// event whose upstream named another model than Model ("" otherwise).
	ServedModel string
}

// parseStreamEvent decodes the field/value pairs written by the scripts.
func parseStreamEvent(values map[string]any) (Event, error) {
	var e Event
	var err error
	num := func(name string) int64 {
		s, _ := values[name].(string)
		if s == "" || err != nil {
			return 0
		}
		var v int64
		v, err = strconv.ParseInt(s, 10, 64)
		if err != nil {
			err = fmt.Errorf("field %s=%q: %w", name, s, err)
		}
		return v
	}
	str := func(name string) string { s, _ := values[name].(string); return s }
	e.ID, e.Kind = str("id"), str("k")
	e.At = time.UnixMilli(num("t")).UTC()
	e.UserID, e.Username = num("u"), str("un")
	e.ProjectID, e.ProjectName = num("p"), str("pn")
	e.Cost = Credits(num("c"))
	e.Allowance, e.Pool = Credits(num("a")), Credits(num("pl"))
	e.Awarded, e.Purchased = Credits(num("aw")), Credits(num("pr"))
	e.PoolUsed = Credits(num("pu"))
	if _, ok := values["ap"]; ok {
		e.AllowancePeriod, e.HasPeriod = num("ap"), true
	}
	if _, ok := values["gm"]; ok {
		e.GrantMonth, e.HasGrant = num("gm"), true
	}
	e.Request, e.Actor, e.Note = str("rq"), str("ac"), str("no")
	// A hold always has detail (its estimate may be 0, which the script
	// leaves out); a usage event has it when it settles a reservation.
	if _, ok := values["rs"]; ok || e.Kind == KindHold || e.Kind == KindLease {
		e.HasDetail, e.Model = true, str("m")
		e.InputUnits, e.OutputUnits = num("iu"), num("ou")
		e.Reserved, e.UpstreamStatus, e.DurationMs = Credits(num("rs")), -1, num("ms")
		if _, ok := values["st"]; ok {
			e.UpstreamStatus = num("st")
		}
		e.Shortfall, e.Forfeited = Credits(num("sf")), Credits(num("ff"))
		e.ServedModel = str("rm")
	}
	if err == nil && (e.ID == "" || e.Kind == "") {
		err = fmt.Errorf("event without id or kind")
	}
	return e, err
}
