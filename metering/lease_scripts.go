package metering

import "fmt"

// The typed boundary of the credit-lease scripts: one Args struct per
// script in the order the script reads it, and its answer parsed in one
// place (lease_take.lua, lease_flush.lua, lease_end.lua).

var (
	leaseTakeScript  = mustScriptWithPrelude("lease_take.lua")
	leaseFlushScript = mustScript("lease_flush.lua")
	leaseEndScript   = mustScript("lease_end.lua")
	heartbeatScript  = mustScript("gateway_heartbeat.lua")
	recallScript     = mustScript("recall.lua")
)

// leaseTakeArgs is one lease_take.lua call.
type leaseTakeArgs struct {
	UserKey, ProjectKey, EventsKey, RecordKey, LeasesKey, UserLeasesKey string // KEYS[1..6]

	KeyHash        string  // ARGV[1], the raw 32-byte key hash
	UserVersion    string  // ARGV[2]
	ProjectVersion string  // ARGV[3]
	NowMs          int64   // ARGV[4]
	AllowanceStart string  // ARGV[5], Unix seconds
	Month          string  // ARGV[6]
	Cost           Credits // ARGV[7], the first request's
	Want           Credits // ARGV[8], the lease size wanted
	LeaseID        string  // ARGV[9]
	UserID         string  // ARGV[10]
	DeadlineMs     int64   // ARGV[11], when the sweeper may end it
	GatewayID      string  // ARGV[12]
	Request        string  // ARGV[13], the first request's label
	SingleSeconds  int64   // ARGV[14], how long a single request's record lives
}

func (a *leaseTakeArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey, a.EventsKey, a.RecordKey, a.LeasesKey, a.UserLeasesKey)
	c.Str(a.KeyHash)
	c.Str(a.UserVersion)
	c.Str(a.ProjectVersion)
	c.Int(a.NowMs)
	c.Str(a.AllowanceStart)
	c.Str(a.Month)
	c.Int(int64(a.Cost))
	c.Int(int64(a.Want))
	c.Str(a.LeaseID)
	c.Str(a.UserID)
	c.Int(a.DeadlineMs)
	c.Str(a.GatewayID)
	c.Str(a.Request)
	c.Int(a.SingleSeconds)
}

// leaseTakeAnswer: for scriptOK, Outside is what the user can spend
// outside the lease after it, Taken what the lease holds per bucket
// (Size in all), Period the allowance period its allowance belongs to;
// for scriptInsufficient, Outside alone (what could not pay).
type leaseTakeAnswer struct {
	Status  int64
	Outside Credits
	Taken   Split
	Period  int64
	Size    Credits
}

func parseLeaseTakeAnswer(res []int64) (leaseTakeAnswer, error) {
	if len(res) == 0 {
		return leaseTakeAnswer{}, fmt.Errorf("lease take script answered nothing")
	}
	a := leaseTakeAnswer{Status: res[0]}
	switch a.Status {
	case scriptOK:
		if len(res) != 8 {
			return a, fmt.Errorf("lease take script answered %v", res)
		}
		a.Outside, a.Period, a.Size = Credits(res[1]), res[6], Credits(res[7])
		a.Taken = Split{Credits(res[2]), Credits(res[3]), Credits(res[4]), Credits(res[5])}
		if a.Taken.Allowance+a.Taken.Pool+a.Taken.Awarded+a.Taken.Purchased != a.Size {
			return a, fmt.Errorf("lease take script answered %v: parts do not add up", res)
		}
	case scriptInsufficient:
		if len(res) != 2 {
			return a, fmt.Errorf("lease take script answered %v", res)
		}
		a.Outside = Credits(res[1])
	case scriptNoUser, scriptStale, scriptRefused, scriptNoProject, scriptCancelled, scriptDeleted:
		if len(res) != 1 {
			return a, fmt.Errorf("lease take script answered %v", res)
		}
	default:
		return a, fmt.Errorf("lease take script answered status %d", a.Status)
	}
	return a, nil
}

// leaseUse is one request admitted from a lease, as its usage event says.
type leaseUse struct {
	EventID string
	AtMs    int64
	Cost    Credits
	Request string
}

// leaseFlushArgs is one lease_flush.lua call: the uses not yet appended,
// at most maxPackedEvents of them, which the script appends as one packed
// entry (event_pack.go).
type leaseFlushArgs struct {
	EventsKey, RecordKey string // KEYS[1..2]

	Used        Credits    // ARGV[1], the lease's use so far, these included
	UserID      string     // ARGV[2]
	Username    string     // ARGV[3]
	ProjectID   string     // ARGV[4], "0": none
	ProjectName string     // ARGV[5]
	Uses        []leaseUse // ARGV[6] their number, ARGV[7] packUses of them
}

func (a *leaseFlushArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.EventsKey, a.RecordKey)
	c.Int(int64(a.Used))
	c.Str(a.UserID)
	c.Str(a.Username)
	c.Str(a.ProjectID)
	c.Str(a.ProjectName)
	c.Int(int64(len(a.Uses)))
	c.Str(packUses(a.Uses))
}

// parseLeaseFlushAnswer: ended reports that the lease had ended (the
// events were appended all the same).
func parseLeaseFlushAnswer(res []int64) (ended bool, err error) {
	if len(res) != 1 || res[0] != 0 && res[0] != 1 {
		return false, fmt.Errorf("lease flush script answered %v", res)
	}
	return res[0] == 1, nil
}

// leaseEndArgs is one lease_end.lua call.
type leaseEndArgs struct {
	UserKey, ProjectKey, EventsKey, RecordKey, LeasesKey, UserLeasesKey string // KEYS[1..6]

	NowMs         int64   // ARGV[1]
	LeaseID       string  // ARGV[2]
	Used          Credits // ARGV[3]; -1: as the record says
	MarkerSeconds int64   // ARGV[4]
	Note          string  // ARGV[5]
	Orphan        bool    // ARGV[6]
}

func (a *leaseEndArgs) fill(c *scriptCall) {
	orphan := "0"
	if a.Orphan {
		orphan = "1"
	}
	c.Keys = append(c.Keys, a.UserKey, a.ProjectKey, a.EventsKey, a.RecordKey, a.LeasesKey, a.UserLeasesKey)
	c.Args = append(c.Args, a.NowMs, a.LeaseID, int64(a.Used), a.MarkerSeconds, a.Note, orphan)
}

// leaseEndAnswer: for scriptOK what went back and what was forfeited;
// scriptInsufficient (1) means there was no such lease.
type leaseEndAnswer struct {
	Status    int64
	Back      Credits
	Forfeited Credits
}

func parseLeaseEndAnswer(res []int64) (leaseEndAnswer, error) {
	if len(res) == 0 {
		return leaseEndAnswer{}, fmt.Errorf("lease end script answered nothing")
	}
	a := leaseEndAnswer{Status: res[0]}
	switch {
	case a.Status == scriptOK && len(res) == 3:
		a.Back, a.Forfeited = Credits(res[1]), Credits(res[2])
	case len(res) == 1 && (a.Status == 1 || a.Status == scriptNoUser || a.Status == scriptNoProject || a.Status == scriptTooMuchUsed):
	default:
		return a, fmt.Errorf("lease end script answered %v", res)
	}
	return a, nil
}
