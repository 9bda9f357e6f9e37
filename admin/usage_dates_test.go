package admin_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestUsageDateRanges: a date as to is the last day included (the
// reported from=2026-11-30&to=2026-11-30 is a one-day report, not a 400),
// RFC 3339 times stay half-open, no dates is the current month, and the
// answer says which days it covers.
func TestUsageDateRanges(t *testing.T) {
	t.Parallel()
	e := setupAt(t, time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	key := e.createUserKey(t, `{"username":"ann","initial_credits":100}`)
	charge := func(day int, credits int64) {
		e.Clock.Set(time.Date(2026, 11, day, 12, 0, 0, 0, time.UTC)) // day 31 is December 1
		res, err := e.Engine.Charge(e.ctx, key, metering.Credits(credits)*metering.Micro, "GET /x")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	charge(29, 1)
	charge(30, 2)
	charge(31, 4)
	e.Drain(t)
	// The clock stays on December 1.

	for query, want := range map[string]struct {
		from, to string
		credits  string
	}{
		"from=2026-11-30&to=2026-11-30":                     {"2026-11-30", "2026-11-30", "2"},
		"from=2026-11-30&to=2026-12-01":                     {"2026-11-30", "2026-12-01", "6"},
		"from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z": {"2026-11-30", "2026-11-30", "2"},
		"from=2026-11-29T23:00:00Z&to=2026-11-30T01:00:00Z": {"2026-11-29", "2026-11-30", "3"},
		"to=2026-11-30":   {"2026-11-01", "2026-11-30", "3"},
		"from=2026-11-01": {"2026-11-01", "2026-12-31", "7"},
		"":                {"2026-12-01", "2026-12-31", "4"},
	} {
		r := e.admin(t, "GET", "/usage?"+query, "").requireStatus(t, http.StatusOK)
		require.Equal(t, want.from, r.body["from"], query)
		require.Equal(t, want.to, r.body["to"], query)
		rows := r.body["rows"].([]any)
		require.Len(t, rows, 1, query)
		require.Equal(t, num(want.credits), rows[0].(map[string]any)["credits"], query)
	}

	// A range that ends before it starts is refused, saying how to reads.
	r := e.admin(t, "GET", "/usage?from=2026-11-30&to=2026-11-29", "")
	r.requireError(t, http.StatusBadRequest, "invalid_argument", "to")
	require.Equal(t, "to must not be before from (a date as to is the last day included).",
		r.body["error"].(map[string]any)["message"])

	// The CSV's file name says the days it covers.
	req, err := http.NewRequestWithContext(e.ctx, "GET", e.srv.URL+base+"/usage?format=csv&from=2026-11-30&to=2026-11-30", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, `attachment; filename="usage-2026-11-30-to-2026-11-30.csv"`, resp.Header.Get("Content-Disposition"))
}

// TestAuditDateRanges: GET /audit reads from and to as GET /usage does.
func TestAuditDateRanges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.createUserKey(t, `{"username":"ann"}`)
	r := e.admin(t, "GET", "/audit", "").requireStatus(t, http.StatusOK)
	at := requireRFC3339(t, r.body["entries"].([]any)[0].(map[string]any)["at"]).UTC() // the entry's own day
	today := at.Format(time.DateOnly)
	count := func(query string) int {
		r := e.admin(t, "GET", "/audit?"+query, "").requireStatus(t, http.StatusOK)
		return len(r.body["entries"].([]any))
	}
	require.Equal(t, 1, count("from="+today+"&to="+today), "a date as to includes its day")
	midnight := url.QueryEscape(at.Truncate(24 * time.Hour).Format(time.RFC3339))
	require.Equal(t, 0, count("to="+midnight), "a time as to is excluded")
	e.admin(t, "GET", "/audit?from="+today+"&to="+midnight, "").requireError(t, http.StatusBadRequest, "invalid_argument", "to")
}
