package metering

// What a user leaves behind in a project it moves out of, so that coming
// back within the same period resumes it instead of refilling: moves never
// create credits (patch_user.lua has the rules). Redis keeps it in the
// user hash's field 'x'; Postgres in parked_allowances (migration 008),
// maintained from the events below like every other balance.

// Event kinds of moves, besides the move's own config event (which
// changes the user's current allowance and pool draw).
const (
	// KindPark: the user left the event's project; its allowance, pool
	// draw (the deltas, added to the parked entry) and allowance period
	// (the entry's, applied with greatest()) are kept there.
	KindPark = "park"
	// KindResume: the user came back to the event's project; the parked
	// entry is taken back (the deltas are its amounts, negated). The
	// config event of the same move says what the user got.
	KindResume = "resume"
)

// moveEvents rebuilds a move's park and resume events from patch_user.lua's
// answer (res: parked project id or 0, its allowance, period and pool draw,
// resumed 0/1, the resumed allowance and pool draw). base carries the user
// and its new project; old is the user before the move.
func moveEvents(id string, base Event, old *User, res []int64) []Event {
	var out []Event
	if pid := res[0]; pid != 0 {
		ev := base
		ev.ID, ev.Kind, ev.ProjectID, ev.ProjectName = id+":park", KindPark, pid, ""
		if pid == old.ProjectID {
			ev.ProjectName = old.ProjectName
		}
		ev.Allowance, ev.AllowancePeriod, ev.HasPeriod, ev.PoolUsed = Credits(res[1]), res[2], true, Credits(res[3])
		out = append(out, ev)
	}
	if res[4] == 1 {
		ev := base
		ev.ID, ev.Kind = id+":resume", KindResume
		ev.Allowance, ev.PoolUsed = -Credits(res[5]), -Credits(res[6])
		out = append(out, ev)
	}
	return out
}
