package admin

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Query ranges (GET /usage, GET /audit) take from and to as a date
// YYYY-MM-DD (a UTC day) or an RFC 3339 time. The two forms mean what an
// admin means by them: a date names a whole day, so from=2026-11-30 starts
// at its beginning and to=2026-11-30 ends with it (from=to=that date is a
// one-day range); a time is an instant, so a range given in times is
// half-open, from included and to excluded, as times usually are.

// rangeStart reads from: the start of the date, or the time itself.
func rangeStart(field, s string) (time.Time, error) {
	t, _, err := parseDateOrTime(field, s)
	return t, err
}

// rangeEnd reads to as the end of the range, excluded: the start of the
// day after a date (the date is included), or the time itself.
func rangeEnd(field, s string) (end time.Time, isDate bool, err error) {
	t, isDate, err := parseDateOrTime(field, s)
	if isDate {
		t = t.AddDate(0, 0, 1)
	}
	return t, isDate, err
}

func parseDateOrTime(field, s string) (time.Time, bool, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d, true, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, false, invalidArg(field, "must be a date YYYY-MM-DD or an RFC 3339 time, got "+strconv.Quote(s))
	}
	return t, false, nil
}

// checkRangeOrder refuses a range that ends before it starts.
func checkRangeOrder(from, end time.Time, toIsDate bool) error {
	switch {
	case toIsDate && !end.After(from):
		return invalidArg("to", "must not be before from (a date as to is the last day included)")
	case !end.After(from):
		return invalidArg("to", "must be after from (a time as to is excluded)")
	}
	return nil
}

// parseDays reads an age in whole days, "90d", as key_older_than takes it.
// The error is a predicate of the parameter.
func parseDays(s string) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
	if err != nil || !strings.HasSuffix(s, "d") || n < 1 || n > 36500 || s[0] == '+' || s[0] == '0' {
		return 0, fmt.Errorf("must be a number of days such as 90d (from 1d to 36500d), got %s", strconv.Quote(s))
	}
	return time.Duration(n) * 24 * time.Hour, nil
}
