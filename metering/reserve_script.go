package metering

import "fmt"

// The typed boundary of reserve.lua: its keys and arguments in one struct,
// in the order the script reads them, and its answer parsed in one place.

var reserveScript = mustScriptWithPrelude("reserve.lua")

// reserveArgs is one reservation as reserve.lua takes it. The first ten
// positions are a fixed charge's (fixedChargeArgs), so the two read alike.
type reserveArgs struct {
	UserKey         string // KEYS[1]
	ProjectKey      string // KEYS[2]
	EventsKey       string // KEYS[3]
	FlightKey       string // KEYS[4], the user's in-flight set
	RecordKey       string // KEYS[5], the reservation hash (must not exist)
	LeasesKey       string // KEYS[6], the deployment's lease set
	PriceVersionKey string // KEYS[7]

	KeyHash        string  // ARGV[1], the raw 32-byte key hash
	UserVersion    string  // ARGV[2], the user's config version the caller cached
	ProjectVersion string  // ARGV[3], the project's ("" for none)
	NowMs          int64   // ARGV[4]
	AllowanceStart string  // ARGV[5], Unix seconds
	Month          string  // ARGV[6], year*12+month-1
	Amount         Credits // ARGV[7], the estimate to hold
	EventID        string  // ARGV[8], the hold's id and the reservation's name
	Request        string  // ARGV[9], the request label ("" none)
	UserID         string  // ARGV[10], as in UserKey
	DeadlineMs     int64   // ARGV[11], the lease deadline, Unix ms
	Order          string  // ARGV[12], bucket letters (BucketOrder.letters)
	PriceVersion   string  // ARGV[13], the estimate's price version ("" no check)
	Model          string  // ARGV[14] ("" none)
	AllowanceEndMs int64   // ARGV[15], end of the allowance period (0: none)
}

// fill appends the keys and arguments to a call in the script's layout.
func (a *reserveArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey, a.EventsKey, a.FlightKey, a.RecordKey,
		a.LeasesKey, a.PriceVersionKey)
	c.Str(a.KeyHash)
	c.Str(a.UserVersion)
	c.Str(a.ProjectVersion)
	c.Int(a.NowMs)
	c.Str(a.AllowanceStart)
	c.Str(a.Month)
	c.Int(int64(a.Amount))
	c.Str(a.EventID)
	c.Str(a.Request)
	c.Str(a.UserID)
	c.Int(a.DeadlineMs)
	c.Str(a.Order)
	c.Str(a.PriceVersion)
	c.Str(a.Model)
	c.Int(a.AllowanceEndMs)
}

// reserveAnswer is reserve.lua's answer. Remaining is the effective credits
// of the allowed buckets after (scriptOK) or that could not pay
// (scriptInsufficient); Taken is set for scriptOK.
type reserveAnswer struct {
	Status    int64
	Remaining Credits
	Taken     Split
}

// parseReserveAnswer reads reserve.lua's answer; a shape the script never
// gives is an error rather than a guess.
func parseReserveAnswer(res []int64) (reserveAnswer, error) {
	if len(res) == 0 {
		return reserveAnswer{}, fmt.Errorf("reserve script answered nothing")
	}
	a := reserveAnswer{Status: res[0]}
	switch a.Status {
	case scriptOK:
		if len(res) != 6 {
			return a, fmt.Errorf("reserve script answered %v", res)
		}
		a.Remaining = Credits(res[1])
		a.Taken = Split{Credits(res[2]), Credits(res[3]), Credits(res[4]), Credits(res[5])}
	case scriptInsufficient:
		if len(res) != 2 {
			return a, fmt.Errorf("reserve script answered %v", res)
		}
		a.Remaining = Credits(res[1])
	case scriptNoUser, scriptStale, scriptRefused, scriptNoProject, scriptStalePrice, scriptCancelled, scriptDeleted:
		if len(res) != 1 {
			return a, fmt.Errorf("reserve script answered %v", res)
		}
	default:
		return a, fmt.Errorf("reserve script answered status %d", a.Status)
	}
	return a, nil
}
