package admin_test

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryRouteRefusesUnknownQueryParameters walks every operation of the
// served OpenAPI document (which TestOpenAPICoversEveryRoute holds equal
// to the route tables) and sends each one a parameter it does not take:
// each answers 400 naming it, before anything is read or written.
func TestEveryRouteRefusesUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"p1"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"ann","project":"p1","initial_credits":5}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "PUT", "/prices/m1", `{"per_request":1}`).requireStatus(t, http.StatusOK)
	before := e.worldCounts(t)

	doc := e.admin(t, "GET", "/openapi.json", "").requireStatus(t, http.StatusOK)
	paths := doc.body["paths"].(map[string]any)
	fill := strings.NewReplacer("{name}", "p1", "{username}", "ann", "{model}", "m1", "{id}", strings.Repeat("0", 32))
	var ops []string
	for path, methods := range paths {
		for method := range methods.(map[string]any) {
			ops = append(ops, strings.ToUpper(method)+" "+fill.Replace(path))
		}
	}
	sort.Strings(ops)
	require.Len(t, ops, 36, "every operation")
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		body := ""
		if method != "GET" && method != "DELETE" {
			body = "{}"
		}
		r := e.admin(t, method, path+"?bogus_param=1", body)
		r.requireError(t, http.StatusBadRequest, "invalid_argument", "bogus_param")
		msg := r.body["error"].(map[string]any)["message"].(string)
		require.True(t, strings.HasPrefix(msg, "bogus_param is not a query parameter of "+method+" "), "%s: %s", op, msg)
	}
	require.Equal(t, before, e.worldCounts(t), "a refused request writes nothing")
	e.admin(t, "GET", "/users/ann", "").requireStatus(t, http.StatusOK)
}

// TestMisspeltParametersAreRefused: the two reported cases, a repeated
// parameter and a query string Go would half drop.
func TestMisspeltParametersAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"x"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"ann"}`).requireStatus(t, http.StatusCreated)
	before := e.worldCounts(t)
	message := func(r *response) string { return r.body["error"].(map[string]any)["message"].(string) }

	// A typo of dry_run used to run the real import and hand out keys.
	for _, query := range []string{"?dryrun=true", "?dry-run=true", "?Dry_Run=true", "?dry_run=true;x=1", "?dry_run=true&dry_run=false"} {
		resp, raw := e.sendCSV(t, "POST", "/users/import"+query, adminSecret, "username,project,initial_credits\nbob,,5\n")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", query, raw)
	}
	resp, raw := e.sendCSV(t, "POST", "/users/import?dryrun=true", adminSecret, "username,project,initial_credits\nbob,,5\n")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(raw), `"field":"dryrun"`)
	require.Contains(t, string(raw), "dryrun is not a query parameter of POST /users/import, which takes dry_run; did you mean dry_run?")
	require.Equal(t, before, e.worldCounts(t), "no user was imported")

	// A misspelt filter used to list everyone.
	r := e.admin(t, "GET", "/users?projet=x", "")
	r.requireError(t, http.StatusBadRequest, "invalid_argument", "projet")
	require.Contains(t, message(r), "did you mean project?")
	require.Contains(t, message(r), "which takes search, project, status, key_status, key_older_than, balance, sort, limit and cursor")

	// Repeated: which value would win is anyone's guess.
	r = e.admin(t, "GET", "/usage?from=2026-01-01&from=2026-02-01", "")
	r.requireError(t, http.StatusBadRequest, "invalid_argument", "from")
	require.Equal(t, "from is given 2 times; give it once.", message(r))

	// Pairs Go's URL parser cannot read are not dropped silently.
	r = e.admin(t, "GET", "/users?project=x;status=inactive", "")
	r.requireError(t, http.StatusBadRequest, "invalid_argument", "")
	r = e.admin(t, "GET", "/users?project=%zz", "")
	r.requireError(t, http.StatusBadRequest, "invalid_argument", "")

	// Routes without parameters say so; the export takes no page size.
	r = e.admin(t, "GET", "/projects?limit=5", "")
	r.requireError(t, http.StatusBadRequest, "invalid_argument", "limit")
	require.Equal(t, "limit is not a query parameter of GET /projects, which takes none.", message(r))
	code, _, body := e.raw(t, "/users/export?limit=5")
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `"field":"limit"`)

	// The known ones still work.
	e.admin(t, "GET", "/users?project=x&status=active&search=a&sort=username&limit=5", "").requireStatus(t, http.StatusOK)
}
