package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// usageWorld has usage on March 10 and 12, 2026 (the engine's clock):
// ann (project teach) 2 + 0.25 credits, cid (no project) 1.5 credits.
func usageWorld(t *testing.T) *env {
	t.Helper()
	clock := meteringtest.NewClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	e := setupWith(t, meteringtest.Options{KeyEncryptionKey: testKEK(), Clock: clock})
	e.givenProject(t, metering.ProjectSpec{Name: "teach"})
	ann, cid := e.givenUser(t, "ann", "teach"), e.givenUser(t, "cid", "")
	charge := func(key string, cost metering.Credits) {
		res, err := e.Engine.Charge(e.ctx, key, cost, "POST /v1/chat/completions")
		require.NoError(t, err)
		require.Equal(t, metering.Charged, res.Status)
	}
	charge(ann, 2*metering.Micro)
	charge(cid, 1_500_000)
	clock.Set(time.Date(2026, 3, 12, 9, 0, 0, 0, time.UTC))
	charge(ann, 250_000)
	e.Drain(t)
	return e
}

func TestUsageReport(t *testing.T) {
	e := usageWorld(t)
	b := e.signedIn(t, adminSecret)

	// No filters: by day over the current month (the engine's), every day a bar.
	p := b.get("/admin/usage")
	require.Equal(t, http.StatusOK, p.status, p.body)
	for _, id := range []string{"usage-filter", "usage-preview", "usage-rows", "usage-export", "usage-totals"} {
		require.Contains(t, p.body, `id="`+id+`"`)
	}
	require.Contains(t, p.body, `<option value="day" selected>`)
	require.Contains(t, p.body, `id="usage-range">From 1 Mar 2026 to 31 Mar 2026`)
	require.Equal(t, 31, strings.Count(p.body, `<rect class="bar"`), "a bar for every day of March")
	require.Contains(t, p.body, "<title>10 Mar: 3.5</title>")
	require.Contains(t, p.body, "<title>11 Mar: 0</title>")
	rows := sliceBetween(t, p.body, `<table id="usage-rows">`, `</table>`)
	require.Contains(t, rows, "<td>10 Mar 2026</td>")
	require.Contains(t, rows, "<td>12 Mar 2026</td>")
	require.Equal(t, 2, strings.Count(rows, "<tr>")-1, "two days with usage, and the header")
	totals := sliceBetween(t, p.body, `id="usage-totals"`, `</tr>`)
	require.Contains(t, totals, `<td class="num">3</td>`)
	require.Contains(t, totals, `<td class="num">3.75</td>`)
	require.Equal(t, "/admin/usage/export?from=2026-03-01&group_by=day&to=2026-03-31", hrefOf(t, p, "usage-export"))

	// By project: usage outside any project has its own row.
	p = b.get("/admin/usage?" + url.Values{"group_by": {"project"}, "from": {"2026-03-01"}, "to": {"2026-03-31"}}.Encode())
	rows = sliceBetween(t, p.body, `<table id="usage-rows">`, `</table>`)
	require.Contains(t, rows, "<td>(no project)</td>")
	require.Contains(t, rows, "<td>teach</td>")
	require.Contains(t, p.body, "<title>teach: 2.25</title>")
	require.Contains(t, p.body, "<title>(no project): 1.5</title>")
	require.Contains(t, p.body, `<option value="project" selected>`)
	require.Contains(t, p.body, `value="2026-03-01"`)

	// Filters and one day.
	p = b.get("/admin/usage?" + url.Values{"user": {"ann"}, "from": {"2026-03-12"}, "to": {"2026-03-12"}, "group_by": {"none"}}.Encode())
	rows = sliceBetween(t, p.body, `<table id="usage-rows">`, `</table>`)
	require.Contains(t, rows, `<td class="num">0.25</td>`)
	require.NotContains(t, p.body, `<svg class="chart"`, "no chart for totals alone")
	require.Contains(t, p.body, `id="usage-range">From 12 Mar 2026 to 12 Mar 2026`)

	// A range the API refuses: its sentence, the filters kept.
	sentence := e.apiRefusal(t, "GET", "/usage?from=2026-03-31&to=2026-03-01", "")
	p = b.get("/admin/usage?from=2026-03-31&to=2026-03-01&user=ann")
	p.requireRefusal(t, http.StatusBadRequest, sentence)
	require.Contains(t, p.body, `value="ann"`)
	require.NotContains(t, p.body, `id="usage-rows"`)
}

func TestUsageExport(t *testing.T) {
	e := usageWorld(t)
	b := e.signedIn(t, viewerSecret) // reading is for viewers too
	p := b.get("/admin/usage/export?group_by=user&from=2026-03-01&to=2026-03-31")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, "text/csv; charset=utf-8", p.header.Get("Content-Type"))
	require.Equal(t, `attachment; filename="usage-2026-03-01-to-2026-03-31.csv"`, p.header.Get("Content-Disposition"))
	lines := strings.Split(strings.TrimSpace(p.body), "\n")
	require.Len(t, lines, 3, p.body)
	require.Equal(t, "user,requests,credits,allowance,pool,awarded,purchased", strings.TrimSpace(lines[0]))
	require.True(t, strings.HasPrefix(lines[1], "ann,2,2.25,"), lines[1])
	require.True(t, strings.HasPrefix(lines[2], "cid,1,1.5,"), lines[2])

	// An export the API refuses is an error page with its sentence, not a file.
	sentence := e.apiRefusal(t, "GET", "/usage?group_by=week", "")
	p = b.get("/admin/usage/export?group_by=week")
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Empty(t, p.header.Get("Content-Disposition"))
	require.Contains(t, p.body, sentence)
}

func TestUsageInGerman(t *testing.T) {
	e := usageWorld(t)
	b := e.browser(t)
	b.lang = "de"
	b.signIn(adminSecret)
	p := b.get("/admin/usage?from=2026-03-01&to=2026-03-31")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `id="usage-range">Vom 01.03.2026 bis zum 31.03.2026`)
	require.Contains(t, p.body, "<title>10.03.: 3,5</title>")
	require.Contains(t, p.body, `<td class="num">3,75</td>`)
	require.Contains(t, p.body, "Gruppieren nach")
}

// sliceBetween is the part of s from the first start up to the next end.
func sliceBetween(t *testing.T, s, start, end string) string {
	t.Helper()
	i := strings.Index(s, start)
	require.GreaterOrEqual(t, i, 0, "%q not found", start)
	j := strings.Index(s[i:], end)
	require.GreaterOrEqual(t, j, 0, "%q not found after %q", end, start)
	return s[i : i+j]
}
