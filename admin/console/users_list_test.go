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

// listWorld: ann (teachers, 100 credits), ben (no project, nothing) and
// cid (teachers, 5 credits, deactivated).
func listWorld(t *testing.T) *env {
	e := setup(t)
	e.makeProject(t, "teachers")
	e.makeUser(t, "ann", "teachers", 100*metering.Micro)
	e.makeUser(t, "ben", "", 0)
	e.makeUser(t, "cid", "teachers", 5*metering.Micro)
	_, err := e.Engine.SetUserActive(e.ctx, "test", "cid", false)
	require.NoError(t, err)
	return e
}

func TestUsersListShowsUsersAndFiltersThem(t *testing.T) {
	e := listWorld(t)
	b := e.signedIn(t, adminSecret)

	p := b.get("/admin/users")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, []string{"ann", "ben", "cid"}, p.users())
	for _, id := range []string{`id="users"`, `id="user-filter"`, `id="filter-apply"`, `id="new-user" href="/admin/users/new"`,
		`id="import-users" href="/admin/users/import"`, `id="export-csv" href="/admin/users/export"`} {
		require.Contains(t, p.body, id)
	}
	require.Contains(t, p.body, `<a href="/admin/users/ann">ann</a>`)
	require.Contains(t, p.body, `<td class="num">100</td>`)
	require.Contains(t, p.body, `<span class="badge revoked">revoked</span>`, "cid's key is refused while cid is deactivated")
	require.Contains(t, p.body, `<option value="teachers">teachers</option>`, "the project select lists the projects")
	require.NotContains(t, p.body, `id="next-page"`)

	// Each filter as the form sends it: every field present, "" for "all".
	filter := func(changes ...string) []string {
		q := url.Values{"search": {""}, "project": {""}, "status": {""}, "key_status": {""}, "balance": {""}, "sort": {"username"}}
		for i := 0; i+1 < len(changes); i += 2 {
			q.Set(changes[i], changes[i+1])
		}
		p := b.get("/admin/users?" + q.Encode())
		require.Equal(t, http.StatusOK, p.status, p.body)
		return p.users()
	}
	require.Equal(t, []string{"ann", "ben", "cid"}, filter())
	require.Equal(t, []string{"ann", "cid"}, filter("project", "teachers"))
	require.Equal(t, []string{"ben"}, filter("project", "none"))
	require.Equal(t, []string{"cid"}, filter("status", "inactive"))
	require.Equal(t, []string{"cid"}, filter("key_status", "revoked"))
	require.Equal(t, []string{"ann", "ben"}, filter("key_status", "active"))
	require.Equal(t, []string{"ben"}, filter("balance", "zero"))
	require.Equal(t, []string{"ann"}, filter("search", "an"))
	require.Equal(t, []string{"ann", "cid", "ben"}, filter("sort", "-credits"))

	// The page keeps the filters: selected options and the export link.
	p = b.get("/admin/users?project=teachers&status=active&sort=-credits")
	require.Contains(t, p.body, `<option value="teachers" selected>teachers</option>`)
	require.Contains(t, p.body, `<option value="-credits" selected>`)
	require.Contains(t, p.body, `id="export-csv" href="/admin/users/export?project=teachers&amp;sort=-credits&amp;status=active"`)
}

func TestUsersListShowsTheAPIsSentenceForABadFilter(t *testing.T) {
	e := listWorld(t)
	b := e.signedIn(t, adminSecret)
	want := e.usersAPIRefusal(t, http.MethodGet, "/users?search="+url.QueryEscape("ann lee"), "", "")
	p := b.get("/admin/users?search=" + url.QueryEscape("ann lee"))
	require.Equal(t, http.StatusBadRequest, p.status, p.body)
	require.Equal(t, want, p.formError())
	require.Contains(t, p.body, `value="ann lee"`, "the filter stays as typed, to be corrected")
	require.Empty(t, p.users())
}

func TestUsersListPagesKeepTheFilters(t *testing.T) {
	e := setup(t)
	e.makeProject(t, "big")
	for i := 0; i < 52; i++ {
		e.makeUser(t, fmt.Sprintf("u%02d", i), "big", 0)
	}
	e.makeUser(t, "outsider", "", 0)
	b := e.signedIn(t, adminSecret)

	first := b.get("/admin/users?project=big")
	require.Equal(t, http.StatusOK, first.status)
	require.Len(t, first.users(), 50)
	require.Equal(t, "u00", first.users()[0])
	require.NotContains(t, first.body, `id="first-page"`)
	m := regexpFind(t, first.body, `id="next-page" href="([^"]+)"`)
	next := strings.ReplaceAll(m, "&amp;", "&")
	require.Contains(t, next, "project=big")
	require.Contains(t, next, "cursor=")

	second := b.get(next)
	require.Equal(t, http.StatusOK, second.status, second.body)
	require.Equal(t, []string{"u50", "u51"}, second.users(), "the outsider is filtered out on page 2 too")
	require.NotContains(t, second.body, `id="next-page"`)
	require.Contains(t, second.body, `id="first-page" href="/admin/users?project=big"`)
}

func TestUsersExportDownloadsTheFilteredCSV(t *testing.T) {
	e := listWorld(t)
	b := e.signedIn(t, adminSecret)
	p := b.get("/admin/users/export?project=teachers&status=&sort=username&cursor=ignored")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, `attachment; filename="tollgate-users.csv"`, p.header.Get("Content-Disposition"))
	require.Contains(t, p.header.Get("Content-Type"), "text/csv")
	lines := strings.Split(strings.TrimSpace(p.body), "\n")
	require.Len(t, lines, 3)
	require.True(t, strings.HasPrefix(lines[0], "username,project,personal_credits,effective_credits,status,last_activity_at"), lines[0])
	require.True(t, strings.HasPrefix(lines[1], "ann,teachers,100,"), lines[1])
	require.True(t, strings.HasPrefix(lines[2], "cid,teachers,5,"), lines[2])

	// A filter the API refuses is an error page with its sentence, not a file.
	want := e.usersAPIRefusal(t, http.MethodGet, "/users/export?key_status=lost", "", "")
	p = b.get("/admin/users/export?key_status=lost")
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Empty(t, p.header.Get("Content-Disposition"))
	require.Contains(t, p.body, want)
}

func TestUsersListForAViewerHasNoWriteControls(t *testing.T) {
	e := listWorld(t)
	b := e.signedIn(t, viewerSecret)
	p := b.get("/admin/users")
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, []string{"ann", "ben", "cid"}, p.users())
	require.NotContains(t, p.body, `id="new-user"`)
	require.NotContains(t, p.body, `id="import-users"`)
	require.Contains(t, p.body, `id="export-csv"`, "an export is a read")
	require.Equal(t, http.StatusOK, b.get("/admin/users/export").status)
}

func TestUsersListInGerman(t *testing.T) {
	e := setup(t)
	e.makeUser(t, "ann", "", 1234*metering.Micro+500_000)
	b := e.signedIn(t, adminSecret)
	b.lang = "de-DE,de;q=0.9"
	p := b.get("/admin/users")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `<html lang="de">`)
	require.Contains(t, p.body, "<h1>Benutzer</h1>")
	require.Contains(t, p.body, "Benutzername")
	require.Contains(t, p.body, "Verfügbare Credits")
	require.Contains(t, p.body, "Neuer Benutzer")
	require.Contains(t, p.body, `<td class="num">1.234,5</td>`)
	require.Contains(t, p.body, "Kein Projekt")
	require.Contains(t, p.body, "nie", "never active")
}

func regexpFind(t *testing.T, body, pattern string) string {
	t.Helper()
	m := regexpMust(pattern).FindStringSubmatch(body)
	require.NotNil(t, m, "no match for %s", pattern)
	return m[1]
}
