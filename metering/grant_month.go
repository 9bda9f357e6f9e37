package metering

import (
	"fmt"
	"time"
)

// A user's live balances (UserView.Live) include every monthly grant due,
// through the current month in the project's time zone. A users export
// writes that month (grants_paid_through), and an import that reads it
// records the user as paid through it, so re-importing an export does not
// pay this month's grant a second time. A user created without it has this
// month's grant still due, paid at the first request.

// GrantsPaidThrough is the month index (year*12+month-1) through which the
// view's live balances include the monthly grants: the month of LiveAt in
// the user's project's time zone.
func (v *UserView) GrantsPaidThrough() int64 {
	loc, err := LoadLocation(v.projectTZ)
	if err != nil {
		loc = time.UTC // unreachable: a stored time zone was validated
	}
	return MonthIndex(loc, v.LiveAt)
}

// FormatMonth writes a month index as YYYY-MM.
func FormatMonth(index int64) string {
	return fmt.Sprintf("%04d-%02d", index/12, index%12+1)
}

// parseMonth reads YYYY-MM as a month index.
func parseMonth(s string) (int64, bool) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return 0, false
	}
	return MonthIndex(time.UTC, t), true
}
