package metering

import "fmt"

// The typed boundary of peek.lua: its keys and arguments in one struct, in
// the order the script reads them, and its answer parsed in one place.

var peekScript = mustScriptWithPrelude("peek.lua")

// peekArgs is one read of a user's live balances.
type peekArgs struct {
	UserKey    string // KEYS[1]
	ProjectKey string // KEYS[2]

	AllowanceStart int64 // ARGV[1], Unix seconds
	Month          int64 // ARGV[2], year*12+month-1
}

// fill appends the keys and arguments to a call in the script's layout.
func (a *peekArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey)
	c.Args = append(c.Args, a.AllowanceStart, a.Month)
}

// peekAnswer is peek.lua's answer; the balances are set for scriptOK.
type peekAnswer struct {
	Status      int64
	Balances    Balances
	PoolBalance Credits // the project's whole pool
	PoolUsed    Credits // what the user drew from it this period (after a due refill: 0)
	GrantMonth  int64   // the last month paid, due grants applied
}

// parsePeekAnswer reads peek.lua's answer; a shape the script never gives
// is an error rather than a guess.
func parsePeekAnswer(res []int64) (peekAnswer, error) {
	if len(res) == 0 {
		return peekAnswer{}, fmt.Errorf("peek script answered nothing")
	}
	a := peekAnswer{Status: res[0]}
	switch a.Status {
	case scriptOK:
		if len(res) != 9 {
			return a, fmt.Errorf("peek script answered %v", res)
		}
		a.Balances = Balances{Effective: Credits(res[1]), Allowance: Credits(res[2]),
			PoolAvailable: Credits(res[3]), Awarded: Credits(res[4]), Purchased: Credits(res[5])}
		a.PoolBalance, a.PoolUsed, a.GrantMonth = Credits(res[6]), Credits(res[7]), res[8]
	case scriptNoUser, scriptNoProject, scriptDeleted:
		if len(res) != 1 {
			return a, fmt.Errorf("peek script answered %v", res)
		}
	default:
		return a, fmt.Errorf("peek script answered status %d", a.Status)
	}
	return a, nil
}
