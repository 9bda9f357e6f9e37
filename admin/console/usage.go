package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

func (c *Console) usagePages() []page {
	return []page{
		{method: "GET", path: "/usage", h: c.usageReport},
		{method: "GET", path: "/usage/export", h: c.usageExport},
	}
}

// usageFilters are the usage page's query parameters, passed to GET /usage
// as they are (the API validates them and names a bad one).
var usageFilters = []string{"user", "project", "model", "from", "to", "group_by"}

// usageGroups are the groupings the form offers; the console's default is
// by day, which the chart shows best.
var usageGroups = []string{"day", "user", "project", "model", "none"}

// maxFilledDays bounds the days a by-day chart fills with zeros: a longer
// range shows only its days with usage.
const maxFilledDays = 400

// usageRow is a row of GET /usage: the grouping's key (a null project or
// model is usage outside any project, or fixed-cost usage) and the sums.
type usageRow struct {
	Day       *string     `json:"day"`
	User      *string     `json:"user"`
	Project   *string     `json:"project"`
	Model     *string     `json:"model"`
	Requests  int64       `json:"requests"`
	Credits   json.Number `json:"credits"`
	Allowance json.Number `json:"allowance"`
	Pool      json.Number `json:"pool"`
	Awarded   json.Number `json:"awarded"`
	Purchased json.Number `json:"purchased"`
}

// usageTotals sums the rows exactly, in micro-credits.
type usageTotals struct {
	Requests                                     int64
	Credits, Allowance, Pool, Awarded, Purchased string
}

type usageData struct {
	Filter   url.Values // what the form shows
	Groups   []string
	GroupBy  string
	From, To string // the days the API says it covered
	Rows     []usageRow
	Totals   usageTotals
	Chart    template.HTML
	Export   template.URL // the export link's query: the filters and the covered days
	Form     *formState
	Answered bool
}

// usageQuery is the API query for the page's filters; group_by defaults
// to day.
func usageQuery(in url.Values) url.Values {
	q := url.Values{}
	for _, f := range usageFilters {
		if v := in.Get(f); v != "" {
			q.Set(f, v)
		}
	}
	if q.Get("group_by") == "" {
		q.Set("group_by", "day")
	}
	return q
}

func (c *Console) usageReport(w http.ResponseWriter, r *http.Request, s *session) error {
	q := usageQuery(r.URL.Query())
	d := usageData{Filter: q, Groups: usageGroups, GroupBy: q.Get("group_by")}
	var out struct {
		From string     `json:"from"`
		To   string     `json:"to"`
		Rows []usageRow `json:"rows"`
	}
	if err := c.call(r, s, http.MethodGet, "/usage", q, nil, &out); err != nil {
		form, status, err := refusedFilter(err, "filter", q)
		if err != nil {
			return err
		}
		d.Form = form
		c.render(w, r, s, status, "usage", "page.usage", d)
		return nil
	}
	l := c.localizerFor(r, s)
	totals, err := sumUsage(out.Rows)
	if err != nil {
		return err
	}
	d.Answered, d.From, d.To, d.Rows, d.Totals = true, out.From, out.To, out.Rows, totals
	if d.GroupBy != "none" {
		d.Chart = barChart(l, l.T("usage.chart"), usagePoints(l, d.GroupBy, out.From, out.To, out.Rows))
	}
	// The export is of exactly the days shown, even if the month turns
	// before the link is followed.
	export := url.Values{}
	for k, v := range q {
		export[k] = v
	}
	export.Set("from", out.From)
	export.Set("to", out.To)
	d.Export = template.URL(export.Encode()) // url.Values.Encode escapes every part
	c.render(w, r, s, http.StatusOK, "usage", "page.usage", d)
	return nil
}

// refusedFilter is refused for a GET form: the filter values come from the
// query string instead of a posted form.
func refusedFilter(err error, form string, q url.Values) (*formState, int, error) {
	var ae *apiError
	if !asAPIError(err, &ae) || ae.Status >= 500 && ae.Status != http.StatusServiceUnavailable {
		return nil, 0, err
	}
	return &formState{Form: form, Message: ae.Message, Field: ae.Field, Values: q}, ae.Status, nil
}

// sumUsage adds the rows' sums up exactly.
func sumUsage(rows []usageRow) (usageTotals, error) {
	var t usageTotals
	var sums [5]int64
	for _, r := range rows {
		t.Requests += r.Requests
		for i, n := range []json.Number{r.Credits, r.Allowance, r.Pool, r.Awarded, r.Purchased} {
			v, ok := parseMicro(n.String())
			if !ok {
				return t, fmt.Errorf("console: the usage report has an amount that is not a number: %q", n.String())
			}
			sums[i] += v
		}
	}
	t.Credits, t.Allowance, t.Pool = formatMicro(sums[0]), formatMicro(sums[1]), formatMicro(sums[2])
	t.Awarded, t.Purchased = formatMicro(sums[3]), formatMicro(sums[4])
	return t, nil
}

// usagePoints are the chart's bars: one per row, labelled by the
// grouping's key. By day, every day of the range gets a bar (0 without
// usage), so gaps show as gaps, unless the range is very long.
func usagePoints(l *localizer, group, from, to string, rows []usageRow) []chartPoint {
	if group == "day" {
		if points, ok := usageDays(l, from, to, rows); ok {
			return points
		}
	}
	points := make([]chartPoint, 0, len(rows))
	for _, r := range rows {
		v, _ := parseMicro(r.Credits.String())
		points = append(points, chartPoint{Label: usageKey(l, group, r), Value: v})
	}
	return points
}

func usageDays(l *localizer, from, to string, rows []usageRow) ([]chartPoint, bool) {
	first, err1 := time.Parse(time.DateOnly, from)
	last, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil || last.Before(first) || last.Sub(first) > maxFilledDays*24*time.Hour {
		return nil, false
	}
	byDay := map[string]int64{}
	for _, r := range rows {
		if r.Day != nil {
			v, _ := parseMicro(r.Credits.String())
			byDay[*r.Day] += v
		}
	}
	var points []chartPoint
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		points = append(points, chartPoint{Label: usageDayLabel(l, d), Value: byDay[d.Format(time.DateOnly)]})
	}
	return points, true
}

// usageKey is a row's label in the chart and the table.
func usageKey(l *localizer, group string, r usageRow) string {
	var key *string
	switch group {
	case "day":
		if r.Day != nil {
			return l.Date(*r.Day)
		}
	case "user":
		key = r.User
	case "project":
		if key = r.Project; key == nil {
			return l.T("usage.no_project")
		}
	case "model":
		if key = r.Model; key == nil {
			return l.T("usage.no_model")
		}
	}
	if key == nil {
		return ""
	}
	return *key
}

// Key is the row's label, for the template.
func (r usageRow) Key(l *localizer, group string) string { return usageKey(l, group, r) }

// usageDayLabel is a day without its year, for chart labels: 30 Nov, 30.11.
func usageDayLabel(l *localizer, t time.Time) string {
	if l.Lang == "de" {
		return t.Format("02.01.")
	}
	return t.Format("2 Jan")
}

// usageExportDay is a day as the export's file name may carry it.
var usageExportDay = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// usageExport streams GET /usage as CSV with the page's filters. The page
// links it with the covered days, which name the file.
func (c *Console) usageExport(w http.ResponseWriter, r *http.Request, s *session) error {
	q := usageQuery(r.URL.Query())
	q.Set("format", "csv")
	name := "usage.csv"
	if from, to := q.Get("from"), q.Get("to"); usageExportDay.MatchString(from) && usageExportDay.MatchString(to) {
		name = "usage-" + from + "-to-" + to + ".csv"
	}
	return c.stream(w, r, s, "/usage", q, name)
}
