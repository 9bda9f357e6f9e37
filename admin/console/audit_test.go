package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestAuditLog(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	// Written through the console: the actor is the token's name.
	b.submit("/admin/projects", "/admin/projects", url.Values{"name": {"teach"}, "allowance_amount": {"2.5"},
		"allowance_period": {"daily"}, "pool_enabled": {"true"}}).requireSeeOther(t, "/admin/projects")
	// 51 more by another actor, so the log has two pages.
	for i := 0; i < 51; i++ {
		_, err := e.Engine.AdjustPool(e.ctx, "robot", "teach", metering.Micro, fmt.Sprintf("refill %d", i))
		require.NoError(t, err)
	}
	e.givenUser(t, "ann", "")

	p := b.get("/admin/audit")
	require.Equal(t, http.StatusOK, p.status)
	for _, id := range []string{"audit-filter", "audit-apply", "audit", "next-page"} {
		require.Contains(t, p.body, `id="`+id+`"`)
	}
	table := sliceBetween(t, p.body, `<table id="audit">`, `</table>`)
	require.Equal(t, 50, strings.Count(table, "<tr>")-1)
	require.Contains(t, table, "<code>user.create</code>", "newest first")
	require.Contains(t, table, `<span class="detail-key">note:</span> refill 50</span>`)
	require.NotContains(t, table, "project.create")
	require.NotContains(t, p.body, `id="first-page"`)

	p = b.get(hrefOf(t, p, "next-page"))
	require.Equal(t, http.StatusOK, p.status)
	table = sliceBetween(t, p.body, `<table id="audit">`, `</table>`)
	all, _, err := e.Engine.ListAudit(e.ctx, metering.AuditFilter{}, 1000)
	require.NoError(t, err)
	require.Greater(t, len(all), 50)
	require.Equal(t, len(all)-50, strings.Count(table, "<tr>")-1, "the rest on the second page")
	create := sliceBetween(t, table, "<code>project.create</code>", "</tr>")
	require.Contains(t, create, `<td><a href="/admin/projects/teach">teach</a></td>`)
	require.Contains(t, create, `<span class="detail-key">allowance:</span> 2.5</span>`, "amounts as written, exactly")
	require.Contains(t, create, `<span class="detail-key">pool_enabled:</span> true</span>`)
	require.Contains(t, create, `<span class="detail-key">period:</span> daily</span>`)
	require.Contains(t, table, "<td>ops</td>")
	require.NotContains(t, p.body, `id="next-page"`)
	require.Equal(t, "/admin/audit", hrefOf(t, p, "first-page"))

	// Filters, and the next page keeps them.
	p = b.get("/admin/audit?actor=ops")
	table = sliceBetween(t, p.body, `<table id="audit">`, `</table>`)
	require.Equal(t, 1, strings.Count(table, "<tr>")-1)
	require.Contains(t, p.body, `value="ops"`)
	var next *url.URL
	p = b.get("/admin/audit?actor=robot&from=2000-01-01")
	require.Equal(t, "/admin/audit?", hrefOf(t, p, "next-page")[:len("/admin/audit?")])
	next, err = url.Parse(hrefOf(t, p, "next-page"))
	require.NoError(t, err)
	require.Equal(t, "robot", next.Query().Get("actor"))
	require.Equal(t, "2000-01-01", next.Query().Get("from"))
	require.NotEmpty(t, next.Query().Get("cursor"))
	p = b.get("/admin/audit?user=ann")
	table = sliceBetween(t, p.body, `<table id="audit">`, `</table>`)
	require.Equal(t, strings.Count(table, `<a href="/admin/users/ann">ann</a>`), strings.Count(table, "<tr>")-1, "only ann's entries")
	require.Contains(t, table, "<code>user.create</code>")
	p = b.get("/admin/audit?actor=nobody")
	require.Contains(t, p.body, "No entries.")

	// A filter the API refuses: its sentence, what was typed kept.
	sentence := e.apiRefusal(t, "GET", "/audit?user=Not+A+Name", "")
	p = b.get("/admin/audit?user=Not+A+Name")
	p.requireRefusal(t, http.StatusBadRequest, sentence)
	require.Contains(t, p.body, `value="Not A Name"`)

	// Viewers read it too, in German here.
	v := e.browser(t)
	v.lang = "de"
	v.signIn(viewerSecret)
	p = v.get("/admin/audit")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, "<title>Protokoll · Tollgate</title>")
	require.Contains(t, p.body, "Einzelheiten")
}
