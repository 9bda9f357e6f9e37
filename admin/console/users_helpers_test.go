package console_test

import (
	"bytes"
	"encoding/json"
	"html/template"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Helpers of the users list, create and import tests.

func (e *env) makeProject(t testing.TB, name string) {
	t.Helper()
	_, err := e.Engine.CreateProject(e.ctx, "test", metering.ProjectSpec{Name: name, Period: metering.PeriodNone})
	require.NoError(t, err)
}

// makeUser creates a user with awarded credits and returns its key.
func (e *env) makeUser(t testing.TB, name, project string, awarded metering.Credits) string {
	t.Helper()
	_, key, err := e.Engine.CreateUser(e.ctx, "test", metering.UserSpec{Username: name, Project: project, InitialCredits: awarded})
	require.NoError(t, err)
	return key
}

// usersAPIRefusal is the API's sentence for a request as a page shows it
// (HTML-escaped): what the console must show for the same input.
func (e *env) usersAPIRefusal(t testing.TB, method, path, contentType, body string) string {
	t.Helper()
	return htmlText(t, e.apiRefusalAs(t, method, path, contentType, body))
}

// apiRefusalAs sends a request to the admin API itself, with the admin
// token, expects a refusal and returns its sentence.
func (e *env) apiRefusalAs(t testing.TB, method, path, contentType, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/admin/v1"+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.GreaterOrEqual(t, resp.StatusCode, 400, "the API accepted %s %s", method, path)
	var env struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	require.NotEmpty(t, env.Error.Message)
	return env.Error.Message
}

// htmlText is s as html/template writes it in an element's text.
func htmlText(t testing.TB, s string) string {
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("").Parse("{{.}}")).Execute(&buf, s))
	return buf.String()
}

// upload loads from for its CSRF token and posts a multipart form to
// action with fields and, when filename is not empty, a file field
// "file", as a browser submitting an upload form would.
func (b *browser) upload(from, action string, fields url.Values, filename string, content []byte) *page {
	b.t.Helper()
	csrf := b.get(from).csrf(b.t)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(b.t, mw.WriteField("csrf", csrf))
	for k, vs := range fields {
		for _, v := range vs {
			require.NoError(b.t, mw.WriteField(k, v))
		}
	}
	if filename != "" {
		fw, err := mw.CreateFormFile("file", filename)
		require.NoError(b.t, err)
		_, err = fw.Write(content)
		require.NoError(b.t, err)
	}
	require.NoError(b.t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+action, &buf)
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

var (
	shownKey   = regexp.MustCompile(`<code class="secret" id="api-key">([^<]+)</code>`)
	listedUser = regexp.MustCompile(`<tr data-user="([^"]+)">`)
	formError  = regexp.MustCompile(`(?s)<p class="error" role="alert" id="form-error">(.*?)</p>`)
)

// users lists the usernames of a page's rows, in order.
func (p *page) users() []string {
	var names []string
	for _, m := range listedUser.FindAllStringSubmatch(p.body, -1) {
		names = append(names, m[1])
	}
	return names
}

// formError is the text of the page's #form-error, "" when it has none.
func (p *page) formError() string {
	if m := formError.FindStringSubmatch(p.body); m != nil {
		return m[1]
	}
	return ""
}

// auditBy lists the audit entries about user, newest first.
func (e *env) auditOf(t testing.TB, user string) []metering.AuditEntry {
	t.Helper()
	entries, _, err := e.Engine.ListAudit(e.ctx, metering.AuditFilter{User: user}, 100)
	require.NoError(t, err)
	return entries
}

func regexpMust(pattern string) *regexp.Regexp { return regexp.MustCompile(pattern) }

func httptestServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
