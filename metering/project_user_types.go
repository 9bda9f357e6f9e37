package metering

import "time"

// Project is a group of users sharing an allowance rule and a common pool.
type Project struct {
	ID               int64
	Name             string
	AllowanceAmount  Credits
	Period           Period
	TimeZone         string
	PoolEnabled      bool
	PoolBalance      Credits  // Postgres view; ProjectView carries the live one
	PoolPerUserLimit *Credits // nil: no limit
	Version          int64
	Users            int64
	CreatedAt        time.Time
}

// User is the Postgres view of a user. Balances lag Redis by the events
// not yet reconciled; UserView adds the live numbers.
type User struct {
	ID                 int64
	Username           string
	ProjectID          int64 // 0: unassigned
	ProjectName        string
	Active             bool
	Awarded            Credits
	Purchased          Credits
	AllowanceRemaining Credits
	AllowancePeriod    int64
	PoolUsed           Credits
	MonthlyGrant       Credits
	GrantMonth         int64
	Partner            bool
	Version            int64
	LastActivityAt     *time.Time
	CreatedAt          time.Time
	Key                *APIKeyInfo
	// The project's allowance rule, read along for computing period starts.
	projectPeriod Period
	projectTZ     string
	// What the user left in projects it moved out of, as the user hash's
	// field 'x' holds it (parked.go).
	parked string
}

// APIKeyInfo describes a user's live key; the key itself is never stored in clear.
type APIKeyInfo struct {
	Hash      KeyHash
	Prefix    string
	Sealed    []byte
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// Balances is a user's live position as of now, lazy refills applied.
type Balances struct {
	Allowance     Credits
	PoolAvailable Credits
	Awarded       Credits
	Purchased     Credits
	Effective     Credits
}

// UserView is what the admin API shows: configuration plus live balances.
type UserView struct {
	User
	// Live balances from Redis; User's balance fields are Postgres's, which
	// lag by the events not yet reconciled.
	Live     Balances
	LiveAt   time.Time // the instant Live is as of
	HasUsage bool
	InFlight int64
	// NextGrantAt is when the next monthly grant is paid; nil while no
	// grant runs (not a partner, or no amount).
	NextGrantAt *time.Time
	// grantMonth is the month through which Live includes the monthly
	// grants (see GrantsPaidThrough).
	grantMonth int64
}
