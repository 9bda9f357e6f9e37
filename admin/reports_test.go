package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// unusualRow is a row of GET /reports/unusual as JSON decodes it.
func unusualRow(user string, project any, credits, requests, median, baseline string, ratio any, history, reason string) map[string]any {
	var r any = ratio
	if s, ok := ratio.(string); ok {
		r = num(s)
	}
	return map[string]any{"user": user, "project": project, "status": "active", "credits": num(credits),
		"requests": num(requests), "median_daily_credits": num(median), "baseline_credits": num(baseline),
		"ratio": r, "history_days": num(history), "reason": reason}
}

// usernames lists the "user" of each row.
func usernames(t *testing.T, r *response) []string {
	t.Helper()
	rows, ok := r.body["rows"].([]any)
	require.True(t, ok, "rows in %s", r.raw)
	out := []string{}
	for _, row := range rows {
		out = append(out, row.(map[string]any)["user"].(string))
	}
	return out
}

// TestUnusualUsageReport builds 36 days of usage with an injected clock and
// checks GET /reports/unusual: the windows, the 28-day median with days
// without usage as 0 (odd and even counts, a half micro-credit), short and
// missing histories, the exact comparison, filters, paging across
// midnight, CSV and bad parameters.
func TestUnusualUsageReport(t *testing.T) {
	t.Parallel()
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		require.NoError(t, err)
		return d.Add(12 * time.Hour)
	}
	e := setupAt(t, day("2026-02-25"))
	e.admin(t, "POST", "/projects", `{"name":"teach"}`).requireStatus(t, http.StatusCreated)
	keys := map[string]string{}
	for _, name := range []string{"steady", "spiker", "edge", "sporadic", "fresh", "newbie", "mild", "gone", "returning"} {
		project := ""
		if name == "spiker" {
			project = `,"project":"teach"`
		}
		keys[name] = e.createUserKey(t, `{"username":"`+name+`","initial_credits":1000`+project+`}`)
	}
	charge := func(user, credits string) {
		c, err := metering.ParseCredits(credits)
		require.NoError(t, err)
		res, err := e.Engine.Charge(e.ctx, keys[user], c, "POST /v1/chat/completions")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status, "%s %s", user, credits)
	}
	// 2026-02-25 .. 2026-03-30, then today, 2026-03-31.
	for d := day("2026-02-25"); d.Before(day("2026-03-31")); d = d.AddDate(0, 0, 1) {
		e.Clock.Set(d)
		ds := d.Format(time.DateOnly)
		charge("steady", "1")
		charge("steady", "1") // two requests a day
		charge("spiker", "1")
		charge("mild", "1")
		charge("gone", "1")
		switch {
		case ds == "2026-02-25":
			charge("edge", "1")
			charge("sporadic", "3")
		case ds >= "2026-03-03" && ds <= "2026-03-16":
			charge("edge", "1")
		case ds >= "2026-03-17":
			charge("edge", "2.000001")
		}
		if ds >= "2026-03-03" && ds <= "2026-03-12" {
			charge("sporadic", "3") // 10 of the 28 days: median 0
		}
		if ds == "2026-02-26" || ds >= "2026-03-11" {
			charge("returning", "1") // back after 12 days: its history is still 28 days
		}
		switch ds {
		case "2026-03-27":
			charge("fresh", "1")
		case "2026-03-28":
			charge("fresh", "3")
		case "2026-03-30":
			charge("fresh", "2")
		}
	}
	e.Clock.Set(day("2026-03-31"))
	charge("steady", "1")
	charge("steady", "1")
	charge("spiker", "12")
	charge("edge", "7.500003")
	charge("sporadic", "1")
	charge("fresh", "8")
	charge("newbie", "7")
	charge("mild", "5")
	charge("gone", "50")
	charge("returning", "6")
	e.Drain(t)
	e.admin(t, "DELETE", "/users/gone", "").requireStatus(t, http.StatusNoContent)

	// Today, one day, k = 5: baseline 2026-03-03 .. 03-30.
	//   spiker: median 1, 12 > 5;  fresh: history 03-27..03-30 = [1,3,0,2],
	//   median 1.5, 8 > 7.5;  edge: 14 days of 1 and 14 of 2.000001, median
	//   1.5000005 (shown rounded down), 7.500003 > 7.5000025;  newbie: no
	//   history;  returning: 8 days without usage and 20 of 1 (history 28,
	//   from before the baseline), 6 > 5;  sporadic: 10 of 28 days, median
	//   0.  Not reported: steady
	//   (2 = its median), mild (5 = 5 × 1, not more), gone (deleted).
	spiker := unusualRow("spiker", "teach", "12", "1", "1", "1", "12", "28", "spike")
	fresh := unusualRow("fresh", nil, "8", "1", "1.5", "1.5", "5.33", "4", "short_history")
	edge := unusualRow("edge", nil, "7.500003", "1", "1.5", "1.5", "5", "28", "spike")
	newbie := unusualRow("newbie", nil, "7", "1", "0", "0", nil, "0", "no_history")
	returning := unusualRow("returning", nil, "6", "1", "1", "1", "6", "28", "spike")
	sporadic := unusualRow("sporadic", nil, "1", "1", "0", "0", nil, "28", "zero_median")
	r := e.admin(t, "GET", "/reports/unusual", "").requireStatus(t, http.StatusOK)
	require.Equal(t, map[string]any{"window": "day", "from": "2026-03-31", "to": "2026-04-01",
		"baseline_from": "2026-03-03", "baseline_to": "2026-03-31", "k": num("5"), "min_credits": num("0"),
		"rows": []any{spiker, fresh, edge, newbie, returning, sporadic}}, r.body, "%s", r.raw)
	// The same, explicitly, and for a viewer.
	r2 := e.do(t, "GET", base+"/reports/unusual?window=day&k=5&date=2026-03-31&format=json", viewerSecret, "").
		requireStatus(t, http.StatusOK)
	require.Equal(t, r.body, r2.body)

	// The comparison is exact: edge is 5.0000003 times its median.
	r = e.admin(t, "GET", "/reports/unusual?k=5.000001", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []string{"spiker", "fresh", "newbie", "returning", "sporadic"}, usernames(t, r))
	r = e.admin(t, "GET", "/reports/unusual?k=4.99", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []string{"spiker", "fresh", "edge", "newbie", "returning", "mild", "sporadic"}, usernames(t, r))
	r = e.admin(t, "GET", "/reports/unusual?k=1", "").requireStatus(t, http.StatusOK)
	require.NotContains(t, usernames(t, r), "steady", "2 is not more than 1 × 2")

	// A week: 2026-03-25 .. 03-31 against 7 × the median of 02-25 .. 03-24.
	// fresh's first usage is in the window now; edge's median is 1 (5 days
	// without usage, 15 of 1, 8 of 2.000001).
	r = e.admin(t, "GET", "/reports/unusual?window=week", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "2026-03-25", r.body["from"])
	require.Equal(t, "2026-02-25", r.body["baseline_from"])
	require.Equal(t, "2026-03-25", r.body["baseline_to"])
	require.Equal(t, []any{
		unusualRow("fresh", nil, "14", "4", "0", "0", nil, "0", "no_history"),
		unusualRow("newbie", nil, "7", "1", "0", "0", nil, "0", "no_history"),
		unusualRow("sporadic", nil, "1", "1", "0", "0", nil, "28", "zero_median"),
	}, r.body["rows"])
	r = e.admin(t, "GET", "/reports/unusual?window=week&k=2", "").requireStatus(t, http.StatusOK)
	rows := r.body["rows"].([]any)
	require.Equal(t, []string{"edge", "spiker", "fresh", "newbie", "sporadic"}, usernames(t, r))
	require.Equal(t, unusualRow("edge", nil, "19.500009", "7", "1", "7", "2.78", "28", "spike"), rows[0])
	require.Equal(t, unusualRow("spiker", "teach", "18", "7", "1", "7", "2.57", "28", "spike"), rows[1])

	// Another day: yesterday had nothing unusual.
	r = e.admin(t, "GET", "/reports/unusual?date=2026-03-30", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "2026-03-30", r.body["from"])
	require.Empty(t, r.body["rows"])

	// Filters: the user's current project, and the least usage worth a row.
	r = e.admin(t, "GET", "/reports/unusual?project=teach", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []string{"spiker"}, usernames(t, r))
	r = e.admin(t, "GET", "/reports/unusual?project=none", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []string{"fresh", "edge", "newbie", "returning", "sporadic"}, usernames(t, r))
	r = e.admin(t, "GET", "/reports/unusual?project=other", "").requireStatus(t, http.StatusOK)
	require.Empty(t, r.body["rows"])
	r = e.admin(t, "GET", "/reports/unusual?min_credits=7.500003", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []string{"spiker", "fresh", "edge"}, usernames(t, r))

	// Pages: a cursor keeps its listing's date, even after midnight.
	r = e.admin(t, "GET", "/reports/unusual?limit=2", "").requireStatus(t, http.StatusOK)
	require.Equal(t, []any{spiker, fresh}, r.body["rows"])
	cursor := r.body["next_cursor"].(string)
	e.Clock.Set(day("2026-04-01").Add(-11*time.Hour - 30*time.Minute)) // 00:30 the next day
	r = e.admin(t, "GET", "/reports/unusual?limit=2&cursor="+url.QueryEscape(cursor), "").requireStatus(t, http.StatusOK)
	require.Equal(t, "2026-03-31", r.body["from"])
	require.Equal(t, []any{edge, newbie}, r.body["rows"])
	last := r.body["next_cursor"].(string)
	r = e.admin(t, "GET", "/reports/unusual?limit=2&date=2026-03-31&cursor="+url.QueryEscape(last), "").requireStatus(t, http.StatusOK)
	require.Equal(t, []any{returning, sporadic}, r.body["rows"])
	require.NotContains(t, r.body, "next_cursor")
	r = e.admin(t, "GET", "/reports/unusual", "").requireStatus(t, http.StatusOK)
	require.Equal(t, "2026-04-01", r.body["from"], "without a cursor the report is today's")
	require.Empty(t, r.body["rows"])
	for _, q := range []string{"k=4&cursor=" + url.QueryEscape(cursor), "date=2026-03-30&cursor=" + url.QueryEscape(cursor),
		"window=week&cursor=" + url.QueryEscape(cursor), "cursor=bm90IGEgY3Vyc29y"} {
		e.admin(t, "GET", "/reports/unusual?"+q, "").requireError(t, http.StatusBadRequest, "invalid_argument", "cursor")
	}

	// CSV: every row, safe cells, empty project and ratio where JSON has null.
	status, ctype, body := e.raw(t, "/reports/unusual?date=2026-03-31&format=csv")
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "text/csv; charset=utf-8", ctype)
	require.Equal(t, strings.Join([]string{
		"user,project,status,credits,requests,median_daily_credits,baseline_credits,ratio,history_days,reason",
		"spiker,teach,active,12,1,1,1,12,28,spike",
		"fresh,,active,8,1,1.5,1.5,5.33,4,short_history",
		"edge,,active,7.500003,1,1.5,1.5,5,28,spike",
		"newbie,,active,7,1,0,0,,0,no_history",
		"returning,,active,6,1,1,1,6,28,spike",
		"sporadic,,active,1,1,0,0,,28,zero_median", ""}, "\n"), body)
	status, _, body = e.raw(t, "/reports/unusual?format=csv")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, strings.Join(unusualHeaderForTest, ",")+"\n", body, "an empty report is its header")

	// Bad parameters: 400 naming the field.
	for query, field := range map[string]string{
		"window=month":              "window",
		"window=":                   "window",
		"k=0.5":                     "k",
		"k=abc":                     "k",
		"k=5.0000001":               "k",
		"k=1000001":                 "k",
		"k=5&k=6":                   "k",
		"min_credits=-1":            "min_credits",
		"min_credits=x":             "min_credits",
		"limit=0":                   "limit",
		"limit=1001":                "limit",
		"format=xml":                "format",
		"format=csv&limit=5":        "limit",
		"format=csv&cursor=abc":     "cursor",
		"project=Bad!":              "project",
		"project=":                  "project",
		"date=2026-13-01":           "date",
		"date=2026-04-02":           "date", // after today
		"date=2026-03-31T25:00:00Z": "date",
		"user=ann":                  "user",
	} {
		e.admin(t, "GET", "/reports/unusual?"+query, "").requireError(t, http.StatusBadRequest, "invalid_argument", field)
	}
	e.do(t, "GET", base+"/reports/unusual", "", "").requireError(t, http.StatusUnauthorized, "unauthenticated", "")
}

var unusualHeaderForTest = []string{"user", "project", "status", "credits", "requests", "median_daily_credits",
	"baseline_credits", "ratio", "history_days", "reason"}
