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
	if p != PeriodDaily && p != PeriodWeekly && p != PeriodMonthly {
		return 0
	}
	start, _ := periodSpan(p, loc, now)
	return start.Unix()
}

// periodEnd returns the first instant of the period after the one that
// contains now, so callers can cache PeriodStart until then.
func periodEnd(p Period, loc *time.Location, now time.Time) time.Time {
	_, end := periodSpan(p, loc, now)
	return end
}

// periodSpan returns the start of the period containing now and the
// start of the next one, both computed by dayStart, so a period ends
// exactly where the next begins and always after now.
func periodSpan(p Period, loc *time.Location, now time.Time) (start, end time.Time) {
	y, m, d := now.In(loc).Date()
	switch p {
	case PeriodDaily:
		start, end = dayStart(y, m, d, loc), dayStart(y, m, d+1, loc)
	case PeriodWeekly:
		back := (int(now.In(loc).Weekday()) + 6) % 7 // days since Monday
		start, end = dayStart(y, m, d-back, loc), dayStart(y, m, d-back+7, loc)
	default:
		start, end = dayStart(y, m, 1, loc), dayStart(y, m+1, 1, loc)
	}
	return start, end
}

// dayStart is the first instant of the local date (y, m, d) in loc (d may
// overflow the month, as for time.Date). It is usually local midnight, but
// where a clock change skips midnight (Santiago, Havana, Asunción, São
// Paulo in some years, …) the day begins at the transition, at 01:00; and
// where midnight happens twice, the day begins at the first. time.Date
// leaves both cases unspecified: for a skipped midnight it may answer an
// instant of the previous day, which once made a period end before it
// began.
func dayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	want := civilDay(time.Date(y, m, d, 12, 0, 0, 0, time.UTC))
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if civilDay(t.In(loc)) < want {
		// Midnight was skipped: the day starts when the clock jumps into it.
		_, jump := t.ZoneBounds()
		if !jump.IsZero() && civilDay(jump.In(loc)) == want {
			return jump
		}
		return firstInstantOf(want, loc, t)
	}
	if prev := t.Add(-time.Nanosecond); civilDay(prev.In(loc)) == want {
		// Midnight happened twice and time.Date chose the second: the first
		// is midnight at the offset in force just before.
		_, off := prev.Zone()
		first := time.Date(y, m, d, 0, 0, 0, 0, time.FixedZone("", off))
		if civilDay(first.In(loc)) == want && civilDay(first.Add(-time.Nanosecond).In(loc)) < want {
			return first
		}
		return firstInstantOf(want, loc, t)
	}
	return t
}

// firstInstantOf finds the first instant whose local date is day by
// bisection over the two days around near (local dates only move forward
// there in every zone Tollgate has met). A fallback for zone data neither
// case above explains.
func firstInstantOf(day int64, loc *time.Location, near time.Time) time.Time {
	lo, hi := near.Add(-48*time.Hour), near.Add(48*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if civilDay(mid.In(loc)) < day {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi.Truncate(time.Second)
}

// civilDay numbers a wall-clock date (days since 1970-01-01 on the
// calendar, whatever the zone), so dates compare as integers.
func civilDay(t time.Time) int64 {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
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
