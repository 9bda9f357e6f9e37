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

// streamFields are a stream entry's field/value pairs, in the order Redis
// gives them: name, value, name, value… A name given twice counts with its
// last value (as XADD would have it read into a map).
type streamFields []string

// fieldsOf turns a map of fields (go-redis's XMessage.Values, a dead
// letter's copy) into pairs.
func fieldsOf(values map[string]any) streamFields {
	if values == nil {
		return nil
	}
	f := make(streamFields, 0, 2*len(values))
	for k, v := range values {
		s, _ := v.(string)
		f = append(f, k, s)
	}
	return f
}

// get is the value of field name ("" when absent) and whether it is present.
func (f streamFields) get(name string) (string, bool) {
	v, ok := "", false
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == name {
			v, ok = f[i+1], true
		}
	}
	return v, ok
}

// rawEvent is an entry's fields picked out by name, still as text: one
// pass over the pairs, then the numbers are parsed in a fixed order so
// that an entry's first bad field is reported whatever its position.
// Fields no script writes are ignored, so an entry of a newer kind still
// decodes.
type rawEvent struct {
	id, k, t, u, un, p, pn, c, a, pl, aw, pr, pu, ap, gm, rq, ac, no string
	rs, m, iu, ou, ms, st, sf, ff, rm                                string
	hasAP, hasGM, hasRS, hasST                                       bool
}

func (r *rawEvent) pick(f streamFields) {
	for i := 0; i+1 < len(f); i += 2 {
		v := f[i+1]
		switch f[i] {
		case "id":
			r.id = v
		case "k":
			r.k = v
		case "t":
			r.t = v
		case "u":
			r.u = v
		case "un":
			r.un = v
		case "p":
			r.p = v
		case "pn":
			r.pn = v
		case "c":
			r.c = v
		case "a":
			r.a = v
		case "pl":
			r.pl = v
		case "aw":
			r.aw = v
		case "pr":
			r.pr = v
		case "pu":
			r.pu = v
		case "ap":
			r.ap, r.hasAP = v, true
		case "gm":
			r.gm, r.hasGM = v, true
		case "rq":
			r.rq = v
		case "ac":
			r.ac = v
		case "no":
			r.no = v
		case "rs":
			r.rs, r.hasRS = v, true
		case "m":
			r.m = v
		case "iu":
			r.iu = v
		case "ou":
			r.ou = v
		case "ms":
			r.ms = v
		case "st":
			r.st, r.hasST = v, true
		case "sf":
			r.sf = v
		case "ff":
			r.ff = v
		case "rm":
			r.rm = v
		}
	}
}

// parseStreamEvent decodes the field/value pairs written by the scripts
// for one event (a packed entry's events: unpack).
func parseStreamEvent(fields streamFields) (Event, error) {
	var r rawEvent
	r.pick(fields)
	e, err := r.decode()
	if err == nil && (e.ID == "" || e.Kind == "") {
		err = fmt.Errorf("event without id or kind")
	}
	return e, err
}

// decode parses the picked fields' numbers, the first bad one reported.
func (r *rawEvent) decode() (Event, error) {
	var e Event
	var err error
	num := func(name, s string) int64 {
		if s == "" || err != nil {
			return 0
		}
		v, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			err = fmt.Errorf("field %s=%q: %w", name, s, perr)
		}
		return v
	}
	e.ID, e.Kind = r.id, r.k
	e.At = time.UnixMilli(num("t", r.t)).UTC()
	e.UserID, e.Username = num("u", r.u), r.un
	e.ProjectID, e.ProjectName = num("p", r.p), r.pn
	e.Cost = Credits(num("c", r.c))
	e.Allowance, e.Pool = Credits(num("a", r.a)), Credits(num("pl", r.pl))
	e.Awarded, e.Purchased = Credits(num("aw", r.aw)), Credits(num("pr", r.pr))
	e.PoolUsed = Credits(num("pu", r.pu))
	if r.hasAP {
		e.AllowancePeriod, e.HasPeriod = num("ap", r.ap), true
	}
	if r.hasGM {
		e.GrantMonth, e.HasGrant = num("gm", r.gm), true
	}
	e.Request, e.Actor, e.Note = r.rq, r.ac, r.no
	// A hold always has detail (its estimate may be 0, which the script
	// leaves out); a usage event has it when it settles a reservation.
	if r.hasRS || e.Kind == KindHold || e.Kind == KindLease {
		e.HasDetail, e.Model = true, r.m
		e.InputUnits, e.OutputUnits = num("iu", r.iu), num("ou", r.ou)
		e.Reserved, e.UpstreamStatus, e.DurationMs = Credits(num("rs", r.rs)), -1, num("ms", r.ms)
		if r.hasST {
			e.UpstreamStatus = num("st", r.st)
		}
		e.Shortfall, e.Forfeited = Credits(num("sf", r.sf)), Credits(num("ff", r.ff))
		e.ServedModel = r.rm
	}
	return e, err
}
