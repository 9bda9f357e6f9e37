package metering

import (
	"archive/zip"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// allZones loads every IANA zone from Go's own zoneinfo.zip, so the test
// sees the same data on every machine.
func allZones(t *testing.T) map[string]*time.Location {
	t.Helper()
	zr, err := zip.OpenReader(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Fatalf("Go's zoneinfo.zip: %v", err)
	}
	defer zr.Close()
	out := map[string]*time.Location{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		loc, err := time.LoadLocationFromTZData(f.Name, data)
		if err != nil {
			continue // not a zone file
		}
		out[f.Name] = loc
	}
	if len(out) < 300 {
		t.Fatalf("only %d zones in zoneinfo.zip", len(out))
	}
	return out
}

// Every day of 2010–2030 in every IANA zone: a day starts at the first
// instant of its local date (even where a clock change skips midnight, as
// in Santiago, Havana, Asunción or São Paulo, or skips the whole day, as
// in Samoa in 2011), ends where the next starts, and every period holds
// the instants it is computed for. Periods are checked around each clock
// change, where they can go wrong; elsewhere every day is midnight to
// midnight.
func TestPeriodsInEveryZone(t *testing.T) {
	t.Parallel()
	first := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC)
	notMidnight, changes := 0, 0
	for name, loc := range allZones(t) {
		var prevStart time.Time
		for day := first; !day.After(last); day = day.AddDate(0, 0, 1) {
			y, m, d := day.Date()
			want := civilDay(day)
			s := dayStart(y, m, d, loc)
			local := s.In(loc)
			if civilDay(local) < want || civilDay(s.Add(-time.Nanosecond).In(loc)) >= want {
				t.Fatalf("%s %s: day starts at %v (%v local)", name, day.Format("2006-01-02"), s, local)
			}
			if s.Before(prevStart) {
				t.Fatalf("%s %s: day starts at %v, before the previous day's %v", name, day.Format("2006-01-02"), s, prevStart)
			}
			h, mi, _ := local.Clock()
			_, offNow := s.Zone()
			_, offPrev := prevStart.In(loc).Zone()
			if h == 0 && mi == 0 && (prevStart.IsZero() || offNow == offPrev) {
				prevStart = s
				continue
			}
			if h != 0 || mi != 0 {
				notMidnight++
			}
			changes++
			prevStart = s
			// A clock change: check every period around it.
			next := dayStart(y, m, d+1, loc)
			for _, now := range []time.Time{s.Add(-time.Nanosecond), s, next.Add(-time.Nanosecond), next} {
				for _, p := range []Period{PeriodDaily, PeriodWeekly, PeriodMonthly} {
					start, end := periodSpan(p, loc, now)
					if start.After(now) || !end.After(now) || PeriodStart(p, loc, end) != end.Unix() {
						t.Fatalf("%s %s at %v: %s period [%v, %v) does not hold now or does not meet the next",
							name, day.Format("2006-01-02"), now.In(loc), p, start.In(loc), end.In(loc))
					}
				}
			}
		}
	}
	if notMidnight == 0 || changes < 1000 {
		t.Fatalf("%d days not starting at midnight, %d clock changes: the zone data is not what the test expects", notMidnight, changes)
	}
}

// Santiago skipped midnight on 2022-09-11 (00:00 → 01:00): the day began
// at 01:00, and the 10th's period, seen from 23:30 that evening, ends then,
// after that request, not an hour before it.
func TestSantiagoSkippedMidnight(t *testing.T) {
	t.Parallel()
	loc, err := time.LoadLocation("America/Santiago")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Unix(PeriodStart(PeriodDaily, loc, time.Date(2022, 9, 11, 12, 0, 0, 0, loc)), 0)
	if got := began.In(loc).Format("2006-01-02 15:04 -0700"); got != "2022-09-11 01:00 -0300" {
		t.Fatalf("the 11th began at %s, want 2022-09-11 01:00 -0300", got)
	}
	now := time.Date(2022, 9, 10, 23, 30, 0, 0, loc)
	if end := periodEnd(PeriodDaily, loc, now); !end.Equal(began) || !end.After(now) {
		t.Fatalf("the 10th ends at %v, want %v", end.In(loc), began.In(loc))
	}
}
