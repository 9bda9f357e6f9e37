package metering

import (
	"fmt"
	"time"
)

// Period is how often a project's allowance refills.
type Period string

const (
	PeriodNone    Period = "none"
	PeriodDaily   Period = "daily"
	PeriodWeekly  Period = "weekly" // weeks start on Monday
	PeriodMonthly Period = "monthly"
)

// ParsePeriod validates a period name; "" means none.
func ParsePeriod(s string) (Period, error) {
	switch p := Period(s); p {
	case PeriodNone, PeriodDaily, PeriodWeekly, PeriodMonthly:
		return p, nil
	case "":
		return PeriodNone, nil
	}
	return "", fmt.Errorf("period must be none, daily, weekly or monthly, not %q", s)
}

// PeriodStart returns the Unix second at which the period containing now
// began, in loc. PeriodNone has a single everlasting period starting at 0.
// Calendar maths stays in Go; Lua only compares the numbers.
func PeriodStart(p Period, loc *time.Location, now time.Time) int64 {
	t := now.In(loc)
	y, m, d := t.Date()
	switch p {
	case PeriodDaily:
		return time.Date(y, m, d, 0, 0, 0, 0, loc).Unix()
	case PeriodWeekly:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc).Unix()
	case PeriodMonthly:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc).Unix()
	}
	return 0
}

// periodEnd returns the first instant of the period after the one that
// contains now, so callers can cache PeriodStart until then.
func periodEnd(p Period, loc *time.Location, now time.Time) time.Time {
	t := now.In(loc)
	y, m, d := t.Date()
	switch p {
	case PeriodDaily:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case PeriodWeekly:
		back := (int(t.Weekday()) + 6) % 7
		return time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
}

// MonthIndex numbers calendar months in loc (year*12 + month-1), so Lua can
// count the monthly grants due with one subtraction.
func MonthIndex(loc *time.Location, now time.Time) int64 {
	y, m, _ := now.In(loc).Date()
	return int64(y)*12 + int64(m) - 1
}

// LoadLocation validates an IANA time zone name; "" means UTC.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		// The server's own zone: periods would depend on each gateway's TZ.
		return nil, fmt.Errorf("time zone must be an IANA name such as Europe/Berlin, not %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}
