package admin

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// exportPageSize is how many users each ListUsers call brings; the answer
// is written and flushed page by page, so memory does not grow with the
// number of users.
const exportPageSize = maxUserLimit

// exportHeader: the contract's columns first, then extras.
var exportHeader = []string{"username", "project", "personal_credits", "effective_credits", "status", "last_activity_at",
	"awarded", "purchased", "allowance_remaining", "pool_available", "monthly_grant", "partner", "created_at"}

// userFilter holds the filters of GET /users (search, project incl. "none",
// status, sort), parsed and checked in one place so that export and list
// can share them.
type userFilter struct {
	Search  string // substring of the username
	Project string // a project name, "none" for unassigned, "" for any
	Status  string // "active", "inactive" or "" for any
	Sort    string // "username" (default), "-credits" or "-activity"
}

func parseUserFilter(q map[string][]string) (userFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	f := userFilter{Search: get("search"), Project: get("project"), Status: get("status"), Sort: get("sort")}
	if f.Project != "" && f.Project != "none" && !metering.ValidName(f.Project) {
		return f, invalidArg("project", "must be a project name or none")
	}
	switch f.Status {
	case "", "active", "inactive":
	default:
		return f, invalidArg("status", `must be "active" or "inactive"`)
	}
	switch f.Sort {
	case "", "username":
	case "-credits", "-activity":
		// ListUsers pages by username only for now; sorting a stream
		// would need every user in memory.
		return f, invalidArg("sort", "only sort=username is supported by export for now")
	default:
		return f, invalidArg("sort", `must be "username", "-credits" or "-activity"`)
	}
	return f, nil
}

// match applies the filter to one user. It runs over ListUsers' pages until
// ListUsers takes the filter itself.
func (f userFilter) match(v *metering.UserView) bool {
	switch {
	case f.Search != "" && !strings.Contains(v.Username, strings.ToLower(f.Search)):
		return false
	case f.Project == "none" && v.ProjectName != "":
		return false
	case f.Project != "" && f.Project != "none" && v.ProjectName != f.Project:
		return false
	case f.Status == "active" && !v.Active, f.Status == "inactive" && v.Active:
		return false
	}
	return true
}

// forEachUserPage calls fn with each page of the users matching f.
func (a *api) forEachUserPage(ctx context.Context, f userFilter, fn func([]metering.UserView) error) error {
	after := ""
	for {
		views, next, err := a.engine.ListUsers(ctx, after, exportPageSize)
		if err != nil {
			return err
		}
		kept := views[:0]
		for i := range views {
			if f.match(&views[i]) {
				kept = append(kept, views[i])
			}
		}
		if err := fn(kept); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// exportUsers: GET /users/export → text/csv, every user matching the
// filters of GET /users, streamed page by page.
func (a *api) exportUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for _, name := range []string{"limit", "cursor"} {
		if q.Has(name) {
			return invalidArg(name, "export returns every matching user; it takes no "+name)
		}
	}
	f, err := parseUserFilter(q)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	cw := csv.NewWriter(w)
	started := false
	record := make([]string, len(exportHeader))
	err = a.forEachUserPage(r.Context(), f, func(page []metering.UserView) error {
		if !started {
			// Headers go out with the first page, so an error before it is
			// still a proper JSON error.
			started = true
			h := w.Header()
			h.Set("Content-Type", "text/csv; charset=utf-8")
			h.Set("Content-Disposition", `attachment; filename="users.csv"`)
			w.WriteHeader(http.StatusOK)
			cw.Write(exportHeader)
		}
		for i := range page {
			cw.Write(exportRecord(record, &page[i]))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && err != http.ErrNotSupported {
			return err
		}
		return nil
	})
	if err != nil && started {
		// The status is sent: abort the response so the client sees a
		// truncated transfer rather than a file that looks complete.
		if r.Context().Err() == nil {
			a.log.Warn("user export failed mid-stream", zap.Error(err))
		}
		panic(http.ErrAbortHandler)
	}
	return err
}

// exportRecord fills rec with v's columns, credits as exact decimals and
// times as RFC 3339 in UTC (empty when absent).
func exportRecord(rec []string, v *metering.UserView) []string {
	status := "inactive"
	if v.Active {
		status = "active"
	}
	last := ""
	if v.LastActivityAt != nil {
		last = v.LastActivityAt.UTC().Format(time.RFC3339)
	}
	b := v.Live
	rec[0], rec[1], rec[2], rec[3], rec[4], rec[5] = v.Username, v.ProjectName,
		(b.Awarded + b.Purchased).String(), b.Effective.String(), status, last
	rec[6], rec[7], rec[8], rec[9], rec[10], rec[11], rec[12] = b.Awarded.String(), b.Purchased.String(),
		b.Allowance.String(), b.PoolAvailable.String(), v.MonthlyGrant.String(), strconv.FormatBool(v.Partner),
		v.CreatedAt.UTC().Format(time.RFC3339)
	return rec
}
