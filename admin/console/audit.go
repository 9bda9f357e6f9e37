package console

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

func (c *Console) auditPages() []page {
	return []page{{method: "GET", path: "/audit", h: c.auditList}}
}

// auditFilters are the audit page's query parameters, passed to GET /audit
// as they are (the API validates them); cursor pages through.
var auditFilters = []string{"actor", "user", "from", "to", "cursor"}

// auditEntry is an entry of GET /audit. Details stay raw JSON, so that
// amounts are shown exactly as written (no float on the way).
type auditEntry struct {
	At      string                     `json:"at"`
	Actor   string                     `json:"actor"`
	Action  string                     `json:"action"`
	Target  string                     `json:"target"`
	Details map[string]json.RawMessage `json:"details"`
}

// TargetPath is the console page of the entry's target (below the base
// path): a user's for user and transfer actions, a project's for project
// actions; "" for others (prices). A target deleted since answers 404.
func (e auditEntry) TargetPath() string {
	switch {
	case e.Target == "":
		return ""
	case strings.HasPrefix(e.Action, "user."), strings.HasPrefix(e.Action, "transfer."):
		return userPagePath(e.Target)
	case strings.HasPrefix(e.Action, "project."):
		return "/projects/" + pathSegment(e.Target)
	}
	return ""
}

// auditDetail is one "key: value" pair of an entry's details.
type auditDetail struct {
	Key, Value string
}

// Pairs are the details sorted by key; a text value is shown without its
// quotes, anything else (numbers, true/false, lists) as compact JSON.
func (e auditEntry) Pairs() []auditDetail {
	pairs := make([]auditDetail, 0, len(e.Details))
	for k, raw := range e.Details {
		pairs = append(pairs, auditDetail{Key: k, Value: auditValue(raw)})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Key < pairs[j].Key })
	return pairs
}

func auditValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

type auditData struct {
	Filter  url.Values
	Entries []auditEntry
	// First and Next are the pager's links (below the base path), with
	// the filters; "" where there is no such page.
	First, Next template.URL
	Form        *formState
}

// auditLink is the audit page with the filters of q and cursor.
func auditLink(q url.Values, cursor string) template.URL {
	link := url.Values{}
	for _, f := range auditFilters {
		if v := q.Get(f); v != "" && f != "cursor" {
			link.Set(f, v)
		}
	}
	if cursor != "" {
		link.Set("cursor", cursor)
	}
	if len(link) == 0 {
		return "/audit"
	}
	return template.URL("/audit?" + link.Encode()) // Encode escapes every part
}

func (c *Console) auditList(w http.ResponseWriter, r *http.Request, s *session) error {
	q := url.Values{}
	for _, f := range auditFilters {
		if v := r.URL.Query().Get(f); v != "" {
			q.Set(f, v)
		}
	}
	d := auditData{Filter: q}
	var out struct {
		Entries    []auditEntry `json:"entries"`
		NextCursor string       `json:"next_cursor"`
	}
	if err := c.call(r, s, http.MethodGet, "/audit", q, nil, &out); err != nil {
		form, status, err := refusedFilter(err, "filter", q)
		if err != nil {
			return err
		}
		d.Form = form
		c.render(w, r, s, status, "audit", "page.audit", d)
		return nil
	}
	d.Entries = out.Entries
	if q.Get("cursor") != "" {
		d.First = auditLink(q, "")
	}
	if out.NextCursor != "" {
		d.Next = auditLink(q, out.NextCursor)
	}
	c.render(w, r, s, http.StatusOK, "audit", "page.audit", d)
	return nil
}
