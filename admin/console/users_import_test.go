package console_test

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/console"
	"github.com/tollgate/tollgate/metering"
)

var (
	uploadID    = regexp.MustCompile(`name="upload" value="([^"]+)"`)
	createdRow  = regexp.MustCompile(`(?s)<tr data-user="([^"]+)">.*?<code>([^<]+)</code>`)
	keysCSVLink = regexp.MustCompile(`id="import-keys-csv" href="data:text/csv;charset=utf-8;base64,([A-Za-z0-9+/=]+)" download="tollgate-keys.csv"`)
	badRow      = regexp.MustCompile(`<tr class="bad" data-line="(\d+)">`)
)

// preview uploads csvText on the import page and returns the preview.
func (b *browser) preview(csvText string) *page {
	b.t.Helper()
	return b.upload("/admin/users/import", "/admin/users/import/preview", nil, "users.csv", []byte(csvText))
}

func TestImportPreviewThenConfirmShowsTheKeys(t *testing.T) {
	e := setup(t)
	e.makeProject(t, "teachers")
	b := e.signedIn(t, adminSecret)

	form := b.get("/admin/users/import")
	require.Equal(t, http.StatusOK, form.status)
	require.Contains(t, form.body, `enctype="multipart/form-data"`)
	require.Contains(t, form.body, `id="import-form"`)
	require.Contains(t, form.body, `id="import-preview"`)

	p := b.preview("username,project,initial_credits,purchased,partner,monthly_grant\n" +
		"amy,teachers,10,1.5,yes,4\nBo,,2.5,,,\n")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `id="import-rows"`)
	require.Contains(t, p.body, `id="import-totals"`)
	require.Empty(t, badRow.FindAllString(p.body, -1))
	require.Contains(t, p.body, `data-line="2"`)
	require.Contains(t, p.body, `data-line="3"`)
	require.Contains(t, p.body, "(in the file: Bo)", "a username folded to lower case says so")
	require.Contains(t, p.body, "10 credits awarded · 1.5 purchased · 4 every month · partner</td>")
	require.Contains(t, p.body, `<dt>Users</dt><dd>2</dd>`)
	require.Contains(t, p.body, `<dd id="import-errors">0</dd>`)
	require.Contains(t, p.body, `id="import-confirm-form"`)
	m := uploadID.FindStringSubmatch(p.body)
	require.NotNil(t, m)
	_, err := e.Engine.GetUser(e.ctx, "amy")
	require.Error(t, err, "a preview creates nobody")

	// Confirm: the file kept server-side is imported; only its id is posted.
	p = b.submit("/admin/users/import", "/admin/users/import/confirm", url.Values{"upload": {m[1]}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	require.Contains(t, p.body, `id="import-created"`)
	shown := map[string]string{}
	for _, row := range createdRow.FindAllStringSubmatch(p.body, -1) {
		shown[row[1]] = row[2]
	}
	require.Len(t, shown, 2)
	for name, key := range shown {
		usable, err := e.Engine.KeyUsable(e.ctx, key)
		require.NoError(t, err)
		require.True(t, usable, "the key shown for %s works", name)
	}

	// The same keys, downloadable from a data: URL without a second request.
	link := keysCSVLink.FindStringSubmatch(p.body)
	require.NotNil(t, link, p.body)
	raw, err := base64.StdEncoding.DecodeString(link[1])
	require.NoError(t, err)
	records, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{{"username", "project", "api_key"}, {"amy", "teachers", shown["amy"]}, {"bo", "", shown["bo"]}}, records)

	amy, err := e.Engine.GetUser(e.ctx, "amy")
	require.NoError(t, err)
	require.Equal(t, 10*metering.Micro, amy.Awarded)
	require.Equal(t, 1*metering.Micro+500_000, amy.Purchased)
	require.True(t, amy.Partner)
	entries, _, err := e.Engine.ListAudit(e.ctx, metering.AuditFilter{Actor: "ops"}, 10)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	require.Equal(t, "user.import", entries[0].Action)
	for _, key := range shown {
		require.NotContains(t, entries[0].Details, key)
	}

	// The upload was for one confirmation: a second one imports nothing.
	p = b.submit("/admin/users/import", "/admin/users/import/confirm", url.Values{"upload": {m[1]}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Contains(t, p.formError(), "no longer waiting for confirmation")
	require.NotContains(t, p.body, `id="import-created"`)
}

func TestImportPreviewShowsBadRowsAndCannotBeConfirmed(t *testing.T) {
	e := setup(t)
	e.makeProject(t, "teachers")
	e.makeUser(t, "taken", "", 0)
	b := e.signedIn(t, adminSecret)

	p := b.preview("username,project,initial_credits\nok-one,teachers,1\ntaken,,1\nnew-two,nowhere,1\nthree,,-4\n")
	require.Equal(t, http.StatusOK, p.status, p.body)
	var bad []string
	for _, m := range badRow.FindAllStringSubmatch(p.body, -1) {
		bad = append(bad, m[1])
	}
	require.Equal(t, []string{"3", "4", "5"}, bad)
	require.Contains(t, p.body, "POST /projects", "the unknown project's sentence says to create it first")
	require.Contains(t, p.body, `<dd id="import-errors">3</dd>`)
	require.Contains(t, p.body, `id="import-has-errors"`)
	require.NotContains(t, p.body, `id="import-confirm-form"`)
	require.NotRegexp(t, uploadID, p.body)

	// Nothing is pending: a confirm with a made-up id imports nothing.
	p = b.submit("/admin/users/import", "/admin/users/import/confirm", url.Values{"upload": {"made-up"}})
	require.Equal(t, http.StatusConflict, p.status)
	_, err := e.Engine.GetUser(e.ctx, "ok-one")
	require.Error(t, err)
}

func TestImportFileErrorsShowTheAPIsSentence(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)

	for _, file := range []string{"name,credits\nann,1\n", "username,project,initial_credits\n\"ann,,1\n"} {
		want := e.usersAPIRefusal(t, http.MethodPost, "/users/import?dry_run=true", "text/csv", file)
		p := b.preview(file)
		require.Equal(t, http.StatusBadRequest, p.status, p.body)
		require.Equal(t, want, p.formError())
		require.Contains(t, p.body, `id="import-form"`, "the upload form is shown again")
	}

	p := b.upload("/admin/users/import", "/admin/users/import/preview", nil, "", nil)
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Equal(t, "Choose a CSV file to import.", p.formError())
}

func TestImportConfirmShowsRowsThatBecameInvalid(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	p := b.preview("username,project,initial_credits\nearly,,1\nlate,,2\n")
	m := uploadID.FindStringSubmatch(p.body)
	require.NotNil(t, m, p.body)

	// Someone takes a username between the preview and the confirmation.
	e.makeUser(t, "late", "", 0)
	p = b.submit("/admin/users/import", "/admin/users/import/confirm", url.Values{"upload": {m[1]}})
	require.Equal(t, http.StatusBadRequest, p.status, p.body)
	require.Contains(t, p.formError(), "Nothing was imported")
	require.Contains(t, p.body, `<tr class="bad" data-line="3">`)
	require.NotContains(t, p.body, `id="import-confirm-form"`)
	require.NotContains(t, p.body, `id="import-created"`)
	_, err := e.Engine.GetUser(e.ctx, "early")
	require.Error(t, err, "all rows or none")
}

func TestImportIsRefusedToAViewer(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, viewerSecret)
	p := b.get("/admin/users/import")
	require.Equal(t, http.StatusOK, p.status)
	require.NotContains(t, p.body, `id="import-form"`)
	// The viewer's own CSRF token, from any page with a form.
	p = b.upload("/admin/users", "/admin/users/import/preview", nil, "users.csv", []byte("username,project,initial_credits\neve,,1\n"))
	require.Equal(t, http.StatusForbidden, p.status)
	p = b.submit("/admin/users", "/admin/users/import/confirm", url.Values{"upload": {"x"}})
	require.Equal(t, http.StatusForbidden, p.status)
}

func TestImportUploadsAreBounded(t *testing.T) {
	e := setup(t)
	api, err := admin.New(e.Engine, admin.Config{Logger: zap.NewNop(), Tokens: []admin.Token{{Name: "ops", Secret: adminSecret, Role: admin.RoleAdmin}}})
	require.NoError(t, err)
	con, err := console.New(console.Config{API: api, MaxUploadBytes: 64})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/", con)
	small := httptestServer(t, mux)
	b := (&env{Bundle: e.Bundle, srv: small, ctx: e.ctx}).signedIn(t, adminSecret)

	p := b.preview("username,project,initial_credits\n" + strings.Repeat("someone,,1\n", 10))
	require.Equal(t, http.StatusRequestEntityTooLarge, p.status)
	require.Equal(t, "The file is larger than 64 bytes; split it into smaller files.", p.formError())

	// A body far beyond the limit is refused before it is read.
	p = b.preview(strings.Repeat("x", 2<<20))
	require.Equal(t, http.StatusRequestEntityTooLarge, p.status)
	require.Contains(t, p.body, "That is too large.")
}

func TestImportPreviewInGerman(t *testing.T) {
	e := setup(t)
	b := e.signedIn(t, adminSecret)
	b.lang = "de"
	p := b.preview("username;project;initial_credits\nanna;;12,5\nanna;;1\n")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "<h1>Import prüfen</h1>")
	require.Contains(t, p.body, "Zeilen mit Fehlern: 1.")
	require.Contains(t, p.body, "12,5 Credits zugeteilt", "amounts in German, the decimal comma of a ; file read")
	require.Contains(t, p.body, `<th class="num">Zeile</th>`)
	require.NotContains(t, p.body, `id="import-confirm-form"`)
}
