package console

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

// userUsageDays is how far back the user page's chart and table look.
const userUsageDays = 30

// userUsage is the last days' usage of one user: the API's rows by day,
// and one chart bar per day (zero on days without usage, so the time
// axis is even).
type userUsage struct {
	From, To string // first and last day covered, as the API says
	Rows     []userUsageRow
	Points   []chartPoint
}

// userUsageRow is a row of GET /usage?group_by=day.
type userUsageRow struct {
	Day       string      `json:"day"`
	Requests  json.Number `json:"requests"`
	Credits   json.Number `json:"credits"`
	Allowance json.Number `json:"allowance"`
	Pool      json.Number `json:"pool"`
	Awarded   json.Number `json:"awarded"`
	Purchased json.Number `json:"purchased"`
}

// loadUserUsage reads the user's credits by day over the last
// userUsageDays UTC days, today included (usage is kept per UTC day).
func (c *Console) loadUserUsage(r *http.Request, s *session, username string) (userUsage, error) {
	today := c.cfg.Now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(userUsageDays - 1))
	q := url.Values{"user": {username}, "group_by": {"day"},
		"from": {first.Format(time.DateOnly)}, "to": {today.Format(time.DateOnly)}}
	var out struct {
		From string         `json:"from"`
		To   string         `json:"to"`
		Rows []userUsageRow `json:"rows"`
	}
	if err := c.call(r, s, http.MethodGet, "/usage", q, nil, &out); err != nil {
		return userUsage{}, err
	}
	byDay := make(map[string]int64, len(out.Rows))
	for _, row := range out.Rows {
		v, _ := parseMicro(row.Credits.String()) // the API writes exact decimals
		byDay[row.Day] = v
	}
	u := userUsage{From: out.From, To: out.To, Rows: out.Rows}
	for d := first; !d.After(today); d = d.AddDate(0, 0, 1) {
		u.Points = append(u.Points, chartPoint{Label: d.Format(time.DateOnly), Value: byDay[d.Format(time.DateOnly)]})
	}
	return u, nil
}

// Chart draws the usage as bars, labelled with short localized days.
func (u userUsage) Chart(l *localizer) template.HTML {
	points := make([]chartPoint, len(u.Points))
	for i, p := range u.Points {
		points[i] = chartPoint{Label: userChartDay(l, p.Label), Value: p.Value}
	}
	return barChart(l, l.T("user.usage_chart"), points)
}

// userChartDay writes a day as a chart label: "30 Nov" or "30.11.".
func userChartDay(l *localizer, day string) string {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	if l.Lang == "de" {
		return t.Format("02.01.")
	}
	return t.Format("2 Jan")
}
