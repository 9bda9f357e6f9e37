package admin

import (
	"net/http"
	"strconv"
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
// {"entries":[...], "next_cursor"?}, newest first. from is inclusive and to
// exclusive; a bare date means that day's 00:00 UTC.
func (a *api) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := metering.AuditFilter{Actor: q.Get("actor"), User: q.Get("user")}
	if f.User != "" && !metering.ValidName(f.User) {
		return invalidArg("user", "must be a username")
	}
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if !q.Has(p.name) {
			continue
		}
		t, err := parseInstant(p.name, q.Get(p.name))
		if err != nil {
			return err
		}
		*p.dst = &t
	}
	if f.From != nil && f.To != nil && !f.To.After(*f.From) {
		return invalidArg("to", "must be after from (to is exclusive)")
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

// parseInstant reads YYYY-MM-DD (00:00 UTC that day) or an RFC 3339 time.
func parseInstant(field, s string) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalidArg(field, "must be a date YYYY-MM-DD or an RFC 3339 time, got "+strconv.Quote(s))
	}
	return t, nil
}
