package metering

import "fmt"

// The typed boundary of refresh.lua: its keys and arguments in one struct,
// in the order the script reads them, and its answer parsed in one place.

var refreshScript = mustScriptWithPrelude("refresh.lua")

// refreshArgs writes one user's due refill and grant.
type refreshArgs struct {
	UserKey    string // KEYS[1]
	ProjectKey string // KEYS[2]
	EventsKey  string // KEYS[3]

	NowMs          int64  // ARGV[1]
	AllowanceStart int64  // ARGV[2], Unix seconds
	Month          int64  // ARGV[3], year*12+month-1
	EventID        string // ARGV[4]; the refill's id is it + ":r", the grant's + ":g"
	UserID         int64  // ARGV[5], as in UserKey
}

// fill appends the keys and arguments to a call in the script's layout.
func (a *refreshArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey, a.EventsKey)
	c.Args = append(c.Args, a.NowMs, a.AllowanceStart, a.Month, a.EventID, a.UserID)
}

// refreshAnswer is refresh.lua's answer; the rest is set for scriptOK.
type refreshAnswer struct {
	Status   int64
	Refilled bool
	// The refill's deltas and the period it started (when Refilled).
	Allowance, PoolUsed Credits
	Period              int64
	// The grant paid into purchased (0: none) and the month index it paid up to.
	Grant Credits
	Month int64
}

// parseRefreshAnswer reads refresh.lua's answer; a shape the script never
// gives is an error rather than a guess.
func parseRefreshAnswer(res []int64) (refreshAnswer, error) {
	if len(res) == 0 {
		return refreshAnswer{}, fmt.Errorf("refresh script answered nothing")
	}
	a := refreshAnswer{Status: res[0]}
	switch a.Status {
	case scriptOK:
		if len(res) != 7 || (res[1] != 0 && res[1] != 1) || res[5] < 0 {
			return a, fmt.Errorf("refresh script answered %v", res)
		}
		a.Refilled = res[1] == 1
		a.Allowance, a.PoolUsed, a.Period = Credits(res[2]), Credits(res[3]), res[4]
		a.Grant, a.Month = Credits(res[5]), res[6]
	case scriptNoUser, scriptNoProject, scriptDeleted:
		if len(res) != 1 {
			return a, fmt.Errorf("refresh script answered %v", res)
		}
	default:
		return a, fmt.Errorf("refresh script answered status %d", a.Status)
	}
	return a, nil
}
