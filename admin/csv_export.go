package admin

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// exportPageSize is how many users each FindUsers call brings; the answer
// is written and flushed page by page, so memory does not grow with the
// number of users.
const exportPageSize = maxUserLimit

// exportHeader: the contract's columns first, then extras. POST
// /users/import reads such a file back (metering/import_columns.go): the
// columns that say what to create, and not the state ones.
var exportHeader = []string{"username", "project", "personal_credits", "effective_credits", "status", "last_activity_at",
	"awarded", "purchased", "allowance_remaining", "pool_available", "monthly_grant", "partner", "created_at",
	"key_status", "key_created_at", "key_expires_at", "grants_paid_through"}

// forEachUserPage calls fn with each page of the users q selects, in q's
// order, following the keyset cursor until the last page.
func (a *api) forEachUserPage(ctx context.Context, q metering.UserQuery, fn func([]metering.UserView) error) error {
	q.Limit = exportPageSize
	for {
		views, next, err := a.engine.FindUsers(ctx, q)
		if err != nil {
			return err
		}
		if err := fn(views); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		q.Cursor = next
	}
}

// exportUsers: GET /users/export → text/csv, every user matching the
// filters of GET /users in the order of its sort, streamed page by page.
func (a *api) exportUsers(w http.ResponseWriter, r *http.Request) error {
	// limit and cursor are not among the route's parameters: the export
	// holds every matching user.
	uq, err := userQueryFrom(r)
	if err != nil {
		return err
	}
	s := newCSVStream(w, r, "users.csv", exportHeader)
	record := make([]string, len(exportHeader))
	err = a.forEachUserPage(r.Context(), uq, func(page []metering.UserView) error {
		now := a.engine.Now()
		for i := range page {
			s.Write(exportRecord(record, &page[i], now))
		}
		return s.Flush()
	})
	return s.Close(a.log, "user export", err)
}

// exportRecord fills rec with v's columns, credits as exact decimals and
// times as RFC 3339 in UTC (empty when absent); the key's status is as of
// now.
func exportRecord(rec []string, v *metering.UserView, now time.Time) []string {
	status := "inactive"
	if v.Active {
		status = "active"
	}
	b := v.Live
	rec[0], rec[1], rec[2], rec[3], rec[4], rec[5] = v.Username, v.ProjectName,
		(b.Awarded + b.Purchased).String(), b.Effective.String(), status, csvTime(v.LastActivityAt)
	rec[6], rec[7], rec[8], rec[9], rec[10], rec[11], rec[12] = b.Awarded.String(), b.Purchased.String(),
		b.Allowance.String(), b.PoolAvailable.String(), v.MonthlyGrant.String(), strconv.FormatBool(v.Partner),
		v.CreatedAt.UTC().Format(time.RFC3339)
	rec[13], rec[14], rec[15], rec[16] = "", "", "", metering.FormatMonth(v.GrantsPaidThrough())
	if k := v.Key; k != nil {
		rec[13], rec[14] = string(v.KeyStatus(now)), csvTime(&k.CreatedAt)
		if k.ExpiresAt != nil {
			// To the nanosecond: an import gives the new key this expiry.
			rec[15] = k.ExpiresAt.UTC().Format(time.RFC3339Nano)
		}
	}
	return rec
}

// csvTime is t as RFC 3339 in UTC, "" for nil.
func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
