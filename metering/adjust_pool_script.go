package metering

// The typed boundary of adjust_pool.lua: its keys and arguments in one
// struct, in the order the script reads them. Its answer has
// adjust_user.lua's shape (adjustAnswer, parseAdjustPoolAnswer).

// adjustPoolArgs is one admin change of a project's pool.
type adjustPoolArgs struct {
	ProjectKey string // KEYS[1]
	EventsKey  string // KEYS[2]

	Field       string  // ARGV[1], projectPool
	Delta       Credits // ARGV[2], signed
	Max         Credits // ARGV[3], the highest balance allowed
	EventID     string  // ARGV[4]
	Kind        string  // ARGV[5], the event's kind
	NowMs       int64   // ARGV[6]
	UserID      string  // ARGV[7], "" (a pool event has no user)
	Username    string  // ARGV[8], ""
	ProjectID   int64   // ARGV[9]
	ProjectName string  // ARGV[10]
	Actor       string  // ARGV[11]
	Note        string  // ARGV[12] ("" none)
}

// fill appends the keys and arguments to a call in the script's layout.
func (a *adjustPoolArgs) fill(c *scriptCall) {
	c.Keys = append(c.Keys, a.ProjectKey, a.EventsKey)
	c.Args = append(c.Args, a.Field, int64(a.Delta), int64(a.Max), a.EventID, a.Kind, a.NowMs,
		a.UserID, a.Username, a.ProjectID, a.ProjectName, a.Actor, a.Note)
}
