package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/metering"
)

func (a *api) reportRoutes() []route {
	return []route{
		{method: "GET", path: "/reports/unusual", h: a.unusualReport, query: unusualParams},
	}
}

// unusualParams are the query parameters GET /reports/unusual takes (the
// route table refuses any other, and any given twice).
var unusualParams = []string{"window", "date", "k", "min_credits", "project", "limit", "cursor", "format"}

// unusualHeader: the CSV columns, the JSON row's fields in the same order.
var unusualHeader = []string{"user", "project", "status", "credits", "requests", "median_daily_credits",
	"baseline_credits", "ratio", "history_days", "reason"}

// unusualReport: GET /reports/unusual → {"window", "from", "to",
// "baseline_from", "baseline_to", "k", "min_credits", "rows": [...],
// "next_cursor"} or, with format=csv, every row as CSV. metering.UnusualQuery
// defines the windows, the median and the reasons.
func (a *api) unusualReport(w http.ResponseWriter, r *http.Request) error {
	uq, csv, err := parseUnusualQuery(r.URL.Query())
	if err != nil {
		return err
	}
	if csv {
		return a.unusualCSV(w, r, uq)
	}
	rep, err := a.engine.UnusualUsage(r.Context(), uq)
	if err != nil {
		return err
	}
	out := struct {
		Window       metering.ReportWindow `json:"window"`
		From         string                `json:"from"`
		To           string                `json:"to"`
		BaselineFrom string                `json:"baseline_from"`
		BaselineTo   string                `json:"baseline_to"`
		K            metering.Factor       `json:"k"`
		MinCredits   metering.Credits      `json:"min_credits"`
		Rows         []unusualRowJSON      `json:"rows"`
		NextCursor   string                `json:"next_cursor,omitempty"`
	}{Window: rep.Window, From: rep.From.Format(time.DateOnly), To: rep.To.Format(time.DateOnly),
		BaselineFrom: rep.BaselineFrom.Format(time.DateOnly), BaselineTo: rep.From.Format(time.DateOnly),
		K: rep.Factor, MinCredits: rep.MinCredits, Rows: make([]unusualRowJSON, len(rep.Rows)), NextCursor: rep.Next}
	for i, row := range rep.Rows {
		out.Rows[i] = unusualOut(row, rep.Window.Days())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseUnusualQuery reads the parameters; the engine checks their values.
// None may be empty but cursor (an empty cursor is the first page). csv
// reports format=csv, which lists every row: it takes no limit or cursor.
func parseUnusualQuery(q url.Values) (uq metering.UnusualQuery, csv bool, err error) {
	for name, vals := range q {
		if vals[0] == "" && name != "cursor" {
			return uq, false, invalidArg(name, "must not be empty")
		}
	}
	switch q.Get("format") {
	case "", "json":
	case "csv":
		csv = true
		for _, name := range []string{"limit", "cursor"} {
			if q.Has(name) {
				return uq, false, invalidArg(name, "format=csv returns every row; it takes no "+name)
			}
		}
	default:
		return uq, false, invalidArg("format", "must be json or csv")
	}
	uq.Window, uq.Project, uq.Cursor = metering.ReportWindow(q.Get("window")), q.Get("project"), q.Get("cursor")
	if q.Has("date") {
		// The window's last day: a date, or the UTC day of a time.
		t, _, err := parseDateOrTime("date", q.Get("date"))
		if err != nil {
			return uq, false, err
		}
		uq.Date = metering.UTCDay(t)
	}
	if q.Has("k") {
		if uq.Factor, err = metering.ParseFactor(q.Get("k")); err != nil {
			return uq, false, invalidArg("k", "must be a number from 1 to 1000000 with at most 6 decimals, got "+strconv.Quote(q.Get("k")))
		}
	}
	if q.Has("min_credits") {
		if uq.MinCredits, err = metering.ParseCredits(q.Get("min_credits")); err != nil {
			return uq, false, invalidArg("min_credits", "must be credits from 0 up with at most 6 decimals, got "+strconv.Quote(q.Get("min_credits")))
		}
	}
	uq.Limit, err = pageLimit(q, 0, maxUserLimit) // 0: the engine's default
	return uq, csv, err
}

// unusualRowJSON is one reported user; ratio is null without a median.
type unusualRowJSON struct {
	User        string                 `json:"user"`
	Project     *string                `json:"project"`
	Status      string                 `json:"status"`
	Credits     metering.Credits       `json:"credits"`
	Requests    int64                  `json:"requests"`
	Median      metering.Credits       `json:"median_daily_credits"`
	Baseline    metering.Credits       `json:"baseline_credits"`
	Ratio       *json.Number           `json:"ratio"`
	HistoryDays int                    `json:"history_days"`
	Reason      metering.UnusualReason `json:"reason"`
}

func unusualOut(row metering.UnusualRow, days int) unusualRowJSON {
	out := unusualRowJSON{User: row.User, Status: "inactive", Credits: row.Credits, Requests: row.Requests,
		Median: row.Median(), Baseline: row.Baseline(days), HistoryDays: row.HistoryDays, Reason: row.Reason}
	if row.Project != "" {
		p := row.Project
		out.Project = &p
	}
	if row.Active {
		out.Status = "active"
	}
	if v, ok := row.Ratio(days); ok {
		n := json.Number(v)
		out.Ratio = &n
	}
	return out
}

// unusualCSV streams every row of the report as CSV, columns as
// unusualHeader: empty project for none, empty ratio without a median.
func (a *api) unusualCSV(w http.ResponseWriter, r *http.Request, uq metering.UnusualQuery) error {
	s := newCSVStream(w, r, "unusual-usage.csv", unusualHeader)
	days := uq.Window.Days()
	rec := make([]string, len(unusualHeader))
	_, err := a.engine.EachUnusualUsage(r.Context(), uq, func(row metering.UnusualRow) error {
		o := unusualOut(row, days)
		rec[0], rec[1], rec[2], rec[3], rec[4] = o.User, row.Project, o.Status, o.Credits.String(), strconv.FormatInt(o.Requests, 10)
		rec[5], rec[6], rec[7], rec[8], rec[9] = o.Median.String(), o.Baseline.String(), "", strconv.Itoa(o.HistoryDays), string(o.Reason)
		if o.Ratio != nil {
			rec[7] = o.Ratio.String()
		}
		return s.Write(rec)
	})
	return s.Close(a.log, "unusual usage CSV", err)
}
