package metering

import (
	"fmt"
)

// The typed boundary of fixed_charge.lua: the arguments in one struct, in
// the order the script reads them, and its answer parsed in one place.
// Status codes are scriptOK and its siblings (script_fields.go).

// Two scripts from one file (see fixed_charge.lua), each with its layout.
var (
	fixedChargeScript   = mustScriptVariant("fixed_charge", "fixed_charge.lua", "local TRACKED = false")
	trackedChargeScript = mustScriptVariant("tracked_charge", "fixed_charge.lua", "local TRACKED = true")
)

// fixedChargeArgs is one fixed-cost charge as fixed_charge.lua takes it.
// Strings the gateway caches (versions, period arguments) are passed as
// they are, so the hot path formats nothing.
type fixedChargeArgs struct {
	UserKey, ProjectKey, EventsKey string // KEYS[1..3]

	KeyHash        string // ARGV[1], the raw 32-byte key hash
	UserVersion    string // ARGV[2], the user's config version the caller cached
	ProjectVersion string // ARGV[3], the project's ("" for none)
	NowMs          int64  // ARGV[4]
	AllowanceStart string // ARGV[5], Unix seconds
	Month          string // ARGV[6], year*12+month-1
	Cost           Credits
	EventID        string // ARGV[8]
	Request        string // ARGV[9], the request label ("" none)
	UserID         string // ARGV[10], as in UserKey
}

// fill appends the keys and arguments to a call in the script's layout,
// unboxed (Str, Int: no allocation per argument).
func (a *fixedChargeArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey, a.EventsKey)
	c.Str(a.KeyHash)
	c.Str(a.UserVersion)
	c.Str(a.ProjectVersion)
	c.Int(a.NowMs)
	c.Str(a.AllowanceStart)
	c.Str(a.Month)
	c.Int(int64(a.Cost))
	c.Str(a.EventID)
	c.Str(a.Request)
	c.Str(a.UserID)
}

// trackedChargeArgs is one tracked fixed-cost charge: a fixed charge plus
// what records it in flight.
type trackedChargeArgs struct {
	Charge     fixedChargeArgs
	FlightKey  string // KEYS[4], the user's in-flight set
	RecordKey  string // KEYS[5], the charge's record (a cancel's marker)
	DeadlineMs int64  // ARGV[11], the lease deadline, Unix ms
}

func (a *trackedChargeArgs) fill(c *scriptCall) {
	a.Charge.fill(c)
	c.Keys = append(c.Keys, a.FlightKey, a.RecordKey)
	c.Int(a.DeadlineMs)
}

// fixedChargeAnswer is fixed_charge.lua's answer. Remaining and Taken are
// set for scriptOK (Remaining: effective credits after); Remaining alone
// for scriptInsufficient (the effective credits that could not pay).
type fixedChargeAnswer struct {
	Status    int64
	Remaining Credits
	Taken     Split
	// Period is the allowance period the allowance part belongs to
	// (tracked charges only; the in-flight member records it).
	Period int64
}

// parseFixedChargeAnswer reads the fixed charge script's answer, and
// parseTrackedChargeAnswer the tracked one's; a shape the script never
// gives is an error rather than a guess.
func parseFixedChargeAnswer(res []int64) (fixedChargeAnswer, error) {
	return parseChargeAnswer(res, false)
}

func parseTrackedChargeAnswer(res []int64) (fixedChargeAnswer, error) {
	return parseChargeAnswer(res, true)
}

func parseChargeAnswer(res []int64, tracked bool) (fixedChargeAnswer, error) {
	if len(res) == 0 {
		return fixedChargeAnswer{}, fmt.Errorf("fixed charge script answered nothing")
	}
	a := fixedChargeAnswer{Status: res[0]}
	switch a.Status {
	case scriptOK:
		want := 6
		if tracked {
			want = 7
		}
		if len(res) != want {
			return a, fmt.Errorf("fixed charge script answered %v", res)
		}
		a.Remaining = Credits(res[1])
		a.Taken = Split{Credits(res[2]), Credits(res[3]), Credits(res[4]), Credits(res[5])}
		if tracked {
			a.Period = res[6]
		}
	case scriptInsufficient:
		if len(res) != 2 {
			return a, fmt.Errorf("fixed charge script answered %v", res)
		}
		a.Remaining = Credits(res[1])
	case scriptNoUser, scriptStale, scriptRefused, scriptNoProject, scriptDeleted:
	case scriptCancelled:
		if !tracked {
			return a, fmt.Errorf("fixed charge script answered status %d", a.Status)
		}
	default:
		return a, fmt.Errorf("fixed charge script answered status %d", a.Status)
	}
	return a, nil
}
