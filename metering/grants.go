package metering

import "time"

// Monthly grants. A user's grant runs while it is a partner with a monthly
// grant above zero, and pays that amount into purchased on the 1st of
// every month in its project's time zone (UTC when unassigned). Payment
// is lazy: the money scripts (and peek.lua, reading) pay every month begun
// since the last one paid, each once, when the user is next seen. The
// user's grant month ('gm' in Redis, grant_month in Postgres) is the last
// month paid or owed nothing; it only grows, so no month is paid twice,
// even when a move to another time zone makes the current month an
// earlier one.

// grantStartMonth is the grant month of a new user: the current month
// owes nothing, so a grant (once the user is a partner with an amount)
// first pays on the next 1st, never at creation.
func grantStartMonth(loc *time.Location, now time.Time) int64 {
	return MonthIndex(loc, now)
}

// monthStart is the first instant of the month with index m (MonthIndex's
// numbering) in loc: when a grant for that month becomes due.
func monthStart(m int64, loc *time.Location) time.Time {
	return dayStart(int(m/12), time.Month(m%12+1), 1, loc)
}

// nextGrantAt is when the user's next monthly grant is due: the 1st after
// both the last month paid (gm, as Redis holds it with due grants
// applied) and now, in loc. nil when no grant runs.
func nextGrantAt(u *User, gm int64, loc *time.Location, now time.Time) *time.Time {
	if !u.Partner || u.MonthlyGrant <= 0 {
		return nil
	}
	t := monthStart(max(gm, MonthIndex(loc, now))+1, loc)
	return &t
}
