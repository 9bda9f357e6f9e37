package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportPreview: a dry run shows what each row writes and what the
// file adds up to, reads a European Excel file (';', decimal commas),
// folds upper-case usernames (shown) and compares them in lower case, and
// explains a missing header and a bad name in words.
func TestImportPreview(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.admin(t, "POST", "/projects", `{"name":"teachers"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/projects", `{"name":"kids"}`).requireStatus(t, http.StatusCreated)
	e.admin(t, "POST", "/users", `{"username":"taken"}`).requireStatus(t, http.StatusCreated)
	before := e.worldCounts(t)

	file := "\ufeffUsername;Project;Initial_Credits;Purchased;Monthly_Grant;Partner\r\n" +
		"Ann.Smith;Teachers;12,5;0,000001;10;TRUE\r\n" +
		"bob;kids;3;;2;no\r\n" +
		"cid;;1000;;;\r\n" +
		"ANN.SMITH;;1;;;\r\n" + // the same username as line 2 once folded
		"Ann Lee;;1;;;\r\n" +
		"TAKEN;;1;;;\r\n"
	a := e.importCSV(t, "?dry_run=true", file, http.StatusOK)
	require.True(t, a.DryRun)
	require.Equal(t, ";", a.Separator)
	require.Equal(t, []string{}, a.IgnoredColumns)
	require.Equal(t, before, e.worldCounts(t), "a dry run writes nothing")

	ann := a.Rows[0]
	require.Equal(t, "ok", ann.Status, ann.Error)
	require.Equal(t, "ann.smith", ann.Username, "stored in lower case")
	require.Equal(t, "Ann.Smith", ann.UsernameInFile)
	require.Equal(t, "teachers", *ann.Project)
	require.Equal(t, json.Number("12.5"), *ann.InitialCredits, "a decimal comma in a ';' file")
	require.Equal(t, json.Number("0.000001"), *ann.Purchased)
	require.Equal(t, json.Number("10"), *ann.MonthlyGrant)
	require.True(t, *ann.Partner)
	require.Equal(t, "active", ann.UserStatus)
	require.Nil(t, ann.KeyExpiresAt)
	require.Nil(t, ann.GrantsPaidThrough)
	require.Empty(t, a.Rows[1].UsernameInFile, "bob was written in lower case")
	require.Nil(t, a.Rows[2].Project, "no project")

	require.Equal(t, "error", a.Rows[3].Status)
	require.Equal(t, `The username "ann.smith" is also on line 2 (usernames are compared in lower case).`, a.Rows[3].Error)
	require.Equal(t, `The username "Ann Lee" contains a space; only lower-case letters a-z, digits 0-9, ".", "_" and "-" are allowed.`,
		a.Rows[4].Error)
	require.Equal(t, `The username "taken" is taken by another user.`, a.Rows[5].Error)

	// Totals: the three valid rows, per bucket and per project.
	tot := a.Totals
	require.Equal(t, 3, tot.Users)
	require.Equal(t, json.Number("1015.5"), tot.InitialCredits)
	require.Equal(t, json.Number("0.000001"), tot.Purchased)
	require.Equal(t, json.Number("12"), tot.MonthlyGrant)
	require.Equal(t, 1, tot.Partners)
	require.Len(t, tot.Projects, 3)
	require.Equal(t, "kids", *tot.Projects[0].Project)
	require.Equal(t, json.Number("3"), tot.Projects[0].InitialCredits)
	require.Equal(t, "teachers", *tot.Projects[1].Project)
	require.Equal(t, json.Number("12.5"), tot.Projects[1].InitialCredits)
	require.Nil(t, tot.Projects[2].Project, "users without a project come last")
	require.Equal(t, 1, tot.Projects[2].Users)
	require.Equal(t, json.Number("1000"), tot.Projects[2].InitialCredits)

	// Without the bad rows the real import writes exactly what the preview showed.
	lines := strings.SplitAfter(file, "\r\n")
	good := strings.Join(lines[:4], "")
	preview := e.importCSV(t, "?dry_run=true", good, http.StatusOK)
	created := e.importCSV(t, "", good, http.StatusOK)
	require.Equal(t, 3, created.Created)
	require.Equal(t, preview.Totals, created.Totals)
	u := e.admin(t, "GET", "/users/ann.smith", "").requireStatus(t, http.StatusOK).body
	require.Equal(t, "teachers", u["project"])
	require.Equal(t, num("12.5"), u["awarded"])
	require.Equal(t, num("0.000001"), u["purchased"], "the first monthly grant is on the next 1st")
	require.Equal(t, true, u["partner"])

	// A file without its header, and tabs.
	resp, raw := e.sendCSV(t, "POST", "/users/import?dry_run=true", adminSecret, "dan,,5\neve,,6\n")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(raw), `The first line must be the header: username,project,initial_credits (it reads \"dan,,5\").`)
	a = e.importCSV(t, "?dry_run=true", "username\tproject\tinitial_credits\ndan\t\t5,5\n", http.StatusOK)
	require.Equal(t, "\t", a.Separator)
	require.Equal(t, json.Number("5.5"), *a.Rows[0].InitialCredits)
}
