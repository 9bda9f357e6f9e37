package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/metering"
)

func (a *api) usageRoutes() []route {
	return []route{
		{method: "GET", path: "/usage", h: a.usage, query: usageParams},
	}
}

// usageParams are the query parameters GET /usage understands.
var usageParams = []string{"user", "project", "model", "from", "to", "group_by", "format"}

// usage: GET /usage → {"from","to","rows":[...]} or the rows as CSV. The
// range is whole UTC days; see parseUsageQuery. The answer says which
// days it covers, the last one included.
func (a *api) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return invalidArg("format", "must be json or csv")
	}
	uq, err := parseUsageQuery(q, a.engine.Now())
	if err != nil {
		return err
	}
	rows, err := a.engine.Usage(r.Context(), uq)
	if err != nil {
		return err
	}
	first, last := uq.From.Format(time.DateOnly), uq.To.AddDate(0, 0, -1).Format(time.DateOnly)
	if format == "csv" {
		w.Header().Set("Content-Disposition", `attachment; filename="usage-`+first+`-to-`+last+`.csv"`)
		writeUsageCSV(w, uq.GroupBy, rows)
		return nil
	}
	out := struct {
		From string         `json:"from"` // first day included
		To   string         `json:"to"`   // last day included
		Rows []usageRowJSON `json:"rows"`
	}{From: first, To: last, Rows: make([]usageRowJSON, len(rows))}
	for i, row := range rows {
		out.Rows[i] = usageRowJSON{group: uq.GroupBy, row: row}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseUsageQuery reads the filters. The rollup is kept per UTC day, so
// the range is widened to whole days: a time as from rounds down to its
// day, a time as to (excluded) rounds up; a date as to is included (see
// dates.go). Missing to: the range runs to the end of the current month
// (UTC). Missing from: the first day of the month of the last day
// included. So no dates means the current month.
func parseUsageQuery(q url.Values, now time.Time) (metering.UsageQuery, error) {
	uq := metering.UsageQuery{User: q.Get("user"), Project: q.Get("project"), Model: q.Get("model"),
		GroupBy: metering.UsageGroup(q.Get("group_by"))}
	if uq.GroupBy == "" {
		uq.GroupBy = metering.GroupNone
	}
	if uq.User != "" && !metering.ValidName(uq.User) {
		return uq, invalidArg("user", "must be a username")
	}
	if uq.Project != "" && !metering.ValidName(uq.Project) {
		return uq, invalidArg("project", "must be a project name")
	}
	if uq.Model != "" && !metering.ValidModel(uq.Model) {
		return uq, invalidArg("model", "must be a model name")
	}
	y, m, _ := now.UTC().Date()
	uq.To = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	toIsDate := true
	if q.Has("to") {
		end, isDate, err := rangeEnd("to", q.Get("to"))
		if err != nil {
			return uq, err
		}
		toIsDate = isDate
		if uq.To = metering.UTCDay(end); !uq.To.Equal(end) {
			uq.To = uq.To.AddDate(0, 0, 1)
		}
	}
	y, m, _ = uq.To.AddDate(0, 0, -1).Date()
	uq.From = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	if q.Has("from") {
		start, err := rangeStart("from", q.Get("from"))
		if err != nil {
			return uq, err
		}
		uq.From = metering.UTCDay(start)
	}
	return uq, checkRangeOrder(uq.From, uq.To, toIsDate)
}

// usageRowJSON prints a row with the grouping's key first: "day", "user",
// "project" (null for usage outside any project) or "model" (null for
// fixed-cost usage), then the sums. Every value goes through
// encoding/json, so any text in the ledger (an old row's model name with
// control characters included) comes out as valid JSON.
type usageRowJSON struct {
	group metering.UsageGroup
	row   metering.UsageRow
}

// usageSumsJSON is the part of a row after its key.
type usageSumsJSON struct {
	Requests  int64            `json:"requests"`
	Credits   metering.Credits `json:"credits"`
	Allowance metering.Credits `json:"allowance"`
	Pool      metering.Credits `json:"pool"`
	Awarded   metering.Credits `json:"awarded"`
	Purchased metering.Credits `json:"purchased"`
}

func (u usageRowJSON) MarshalJSON() ([]byte, error) {
	r := u.row
	sums, err := json.Marshal(usageSumsJSON{Requests: r.Requests, Credits: r.Credits, Allowance: r.Allowance,
		Pool: r.Pool, Awarded: r.Awarded, Purchased: r.Purchased})
	if err != nil || u.group == metering.GroupNone {
		return sums, err
	}
	var key any
	switch u.group {
	case metering.GroupDay:
		key = r.Day.Format(time.DateOnly)
	case metering.GroupUser:
		key = r.User
	case metering.GroupProject:
		key = nullIfEmpty(r.Project)
	case metering.GroupModel:
		key = nullIfEmpty(r.Model)
	}
	b, err := json.Marshal(map[string]any{string(u.group): key})
	if err != nil {
		return nil, err
	}
	// {"model":"x"} and {"requests":...} make {"model":"x","requests":...}.
	return append(append(b[:len(b)-1], ','), sums[1:]...), nil
}

// nullIfEmpty is nil (JSON null) for "", else s.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// writeUsageCSV writes the report as CSV: a header naming the columns, the
// grouping's key column first (empty for usage outside any project, or
// for fixed-cost usage by model).
func writeUsageCSV(w http.ResponseWriter, group metering.UsageGroup, rows []metering.UsageRow) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	cw := NewCSVWriter(w)
	header := []string{"requests", "credits", "allowance", "pool", "awarded", "purchased"}
	key := func(metering.UsageRow) []string { return nil }
	switch group {
	case metering.GroupDay:
		key = func(r metering.UsageRow) []string { return []string{r.Day.Format(time.DateOnly)} }
	case metering.GroupUser:
		key = func(r metering.UsageRow) []string { return []string{r.User} }
	case metering.GroupProject:
		key = func(r metering.UsageRow) []string { return []string{r.Project} }
	case metering.GroupModel:
		key = func(r metering.UsageRow) []string { return []string{r.Model} }
	}
	if group != metering.GroupNone {
		header = append([]string{string(group)}, header...)
	}
	cw.Write(header)
	for _, r := range rows {
		cw.Write(append(key(r), strconv.FormatInt(r.Requests, 10), r.Credits.String(), r.Allowance.String(),
			r.Pool.String(), r.Awarded.String(), r.Purchased.String()))
	}
	cw.Flush()
}
