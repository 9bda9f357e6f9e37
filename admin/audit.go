package admin

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// Page sizes of GET /audit.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 1000
)

func (a *api) auditRoutes() []route {
	return []route{
		{method: "GET", path: "/audit", h: a.listAudit, query: auditParams},
	}
}

var auditParams = []string{"actor", "user", "from", "to", "limit", "cursor"}

type auditEntryJSON struct {
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Details map[string]any `json:"details"`
}

// listAudit: GET /audit?actor=&user=&from=&to=&limit=&cursor= →
// {"entries":[...], "next_cursor"?}, newest first. A date as to is the
// last day included, a time as to is excluded (dates.go).
func (a *api) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := metering.AuditFilter{Actor: q.Get("actor"), User: q.Get("user")}
	if f.User != "" && !metering.ValidName(f.User) {
		return invalidArg("user", "must be a username")
	}
	toIsDate := false
	if q.Has("from") {
		t, err := rangeStart("from", q.Get("from"))
		if err != nil {
			return err
		}
		f.From = &t
	}
	if q.Has("to") {
		t, isDate, err := rangeEnd("to", q.Get("to"))
		if err != nil {
			return err
		}
		f.To, toIsDate = &t, isDate
	}
	if f.From != nil && f.To != nil {
		if err := checkRangeOrder(*f.From, *f.To, toIsDate); err != nil {
			return err
		}
	}
	limit, err := pageLimit(q, defaultAuditLimit, maxAuditLimit)
	if err != nil {
		return err
	}
	if c := q.Get("cursor"); c != "" || q.Has("cursor") {
		cur, err := metering.ParseAuditCursor(c)
		if err != nil {
			return err
		}
		f.Before = &cur
	}
	entries, next, err := a.engine.ListAudit(r.Context(), f, limit)
	if err != nil {
		return err
	}
	out := struct {
		Entries    []auditEntryJSON `json:"entries"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}{Entries: make([]auditEntryJSON, len(entries))}
	for i, e := range entries {
		out.Entries[i] = auditEntryJSON{At: timeJSON(e.At), Actor: e.Actor, Action: e.Action, Target: e.Target, Details: e.Details}
		if out.Entries[i].Details == nil {
			out.Entries[i].Details = map[string]any{}
		}
	}
	if next != nil {
		out.NextCursor = next.String()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
