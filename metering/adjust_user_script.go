package metering

import "fmt"

// The typed boundary of adjust_user.lua: its keys and arguments in one
// struct, in the order the script reads them, and its answer parsed in one
// place.

var adjustUserScript = mustScriptWithPrelude("adjust_user.lua")

// adjustUserArgs is one admin change of a user's awarded or purchased
// balance.
type adjustUserArgs struct {
	UserKey    string // KEYS[1]
	ProjectKey string // KEYS[2]
	EventsKey  string // KEYS[3]

	NowMs          int64   // ARGV[1]
	AllowanceStart int64   // ARGV[2], Unix seconds
	Month          int64   // ARGV[3], year*12+month-1
	Delta          Credits // ARGV[4], signed
	EventID        string  // ARGV[5]
	UserID         int64   // ARGV[6], as in UserKey
	Field          string  // ARGV[7], userAwarded or userPurchased
	Kind           string  // ARGV[8], the event's kind
	Actor          string  // ARGV[9]
	Note           string  // ARGV[10] ("" none)
}

// fill appends the keys and arguments to a call in the script's layout.
func (a *adjustUserArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey, a.EventsKey)
	c.Args = append(c.Args, a.NowMs, a.AllowanceStart, a.Month, int64(a.Delta), a.EventID, a.UserID,
		a.Field, a.Kind, a.Actor, a.Note)
}

// adjustAnswer is the answer of adjust_user.lua and adjust_pool.lua (the
// same shape): Balance is the bucket's new balance for scriptOK, its
// unchanged one for scriptInsufficient and scriptTooLarge.
type adjustAnswer struct {
	Status  int64
	Balance Credits
}

// parseAdjustUserAnswer reads adjust_user.lua's answer; a shape the script
// never gives is an error rather than a guess.
func parseAdjustUserAnswer(res []int64) (adjustAnswer, error) {
	return parseAdjustAnswer("adjust_user", res, scriptNoUser, scriptNoProject, scriptDeleted)
}

// parseAdjustPoolAnswer reads adjust_pool.lua's, which knows no user: its
// -1 is the project not loaded.
func parseAdjustPoolAnswer(res []int64) (adjustAnswer, error) {
	return parseAdjustAnswer("adjust_pool", res, scriptNoUser)
}

func parseAdjustAnswer(script string, res []int64, statuses ...int64) (adjustAnswer, error) {
	if len(res) == 0 {
		return adjustAnswer{}, fmt.Errorf("%s script answered nothing", script)
	}
	a := adjustAnswer{Status: res[0]}
	switch a.Status {
	case scriptOK, scriptInsufficient, scriptTooLarge:
		if len(res) != 2 {
			return a, fmt.Errorf("%s script answered %v", script, res)
		}
		a.Balance = Credits(res[1])
		return a, nil
	}
	for _, s := range statuses {
		if a.Status == s {
			if len(res) != 1 {
				return a, fmt.Errorf("%s script answered %v", script, res)
			}
			return a, nil
		}
	}
	return a, fmt.Errorf("%s script answered status %d", script, a.Status)
}
