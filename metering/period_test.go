package metering

import (
	"testing"
	"time"
)

func TestPeriodStartAcrossTimeZones(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	auckland, _ := time.LoadLocation("Pacific/Auckland")
	// Sunday 2026-03-01 23:30 UTC is Monday 00:30 in Berlin and Monday noon in Auckland.
	now := time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)
	cases := []struct {
		p    Period
		loc  *time.Location
		want time.Time
	}{
		{PeriodDaily, time.UTC, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{PeriodDaily, berlin, time.Date(2026, 3, 2, 0, 0, 0, 0, berlin)},
		{PeriodWeekly, time.UTC, time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC)},
		{PeriodWeekly, berlin, time.Date(2026, 3, 2, 0, 0, 0, 0, berlin)},
		{PeriodMonthly, time.UTC, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{PeriodMonthly, auckland, time.Date(2026, 3, 1, 0, 0, 0, 0, auckland)},
	}
	for _, c := range cases {
		if got := PeriodStart(c.p, c.loc, now); got != c.want.Unix() {
			t.Errorf("%s in %s: got %v want %v", c.p, c.loc, time.Unix(got, 0).In(c.loc), c.want)
		}
		end := periodEnd(c.p, c.loc, now)
		if PeriodStart(c.p, c.loc, end) != end.Unix() || PeriodStart(c.p, c.loc, end.Add(-time.Second)) != c.want.Unix() {
			t.Errorf("%s in %s: period end %v is not the next period's start", c.p, c.loc, end)
		}
	}
	if PeriodStart(PeriodNone, berlin, now) != 0 {
		t.Error("none must have one period")
	}
	// The month rolls in Berlin an hour before it rolls in UTC.
	if MonthIndex(berlin, time.Date(2026, 1, 31, 23, 30, 0, 0, time.UTC)) != MonthIndex(time.UTC, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("month index must follow the time zone")
	}
}
