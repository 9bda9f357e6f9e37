package metering

import (
	"fmt"
	"time"
)

// A user's live balances (UserView.Live) include every monthly grant due
// as of LiveAt. A users export writes the month they are paid through
// (grants_paid_through), and an import that reads it records the user as
// paid through it, so re-importing an export neither pays a month twice
// nor forgets one still owed (grants.go).

// GrantsPaidThrough is the month index (year*12+month-1) through which the
// view's live balances include the monthly grants: the user's grant month
// after the grants due as of LiveAt.
func (v *UserView) GrantsPaidThrough() int64 { return v.grantMonth }

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
