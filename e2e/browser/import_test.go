package browser

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCSV saves content as a file to upload.
func writeCSV(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Upload a CSV, read the preview, confirm; the created users' keys are
// shown and downloadable without a second request, and they work.
func TestImportUsers(t *testing.T) {
	proj := uniqueName("importproj")
	createProject(t, proj, nil)
	stem := "imp" + randomHex(3)
	one, two := stem+"-1", stem+"-2"
	file := writeCSV(t, "username,project,initial_credits\n"+one+","+proj+",10\n"+two+",,5\n")

	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/users")
	p.click("#import-users")
	if got := p.path(); got != "/admin/users/import" {
		t.Fatalf("#import-users led to %s, want /admin/users/import", got)
	}
	p.upload(`#import-form input[type="file"][name="file"]`, file)
	p.click("#import-preview")
	p.need("#import-rows")
	if rows := p.count("#import-rows tbody tr"); rows != 2 {
		t.Errorf("#import-rows has %d rows, want 2", rows)
	}
	if bad := p.count("#import-rows tr.bad"); bad != 0 {
		t.Errorf("#import-rows marks %d good rows bad", bad)
	}
	if table := p.text("#import-rows"); len(missing(table, one, two, proj)) > 0 {
		t.Errorf("#import-rows lacks %v:\n%s", missing(table, one, two, proj), table)
	}
	p.need("#import-totals")
	if got := api(t, "GET", "/users/"+one, nil, nil); got != http.StatusNotFound {
		t.Errorf("the preview created %s (GET answers %d)", one, got)
	}
	p.screenshot("import-preview")

	p.need("#import-confirm-form")
	if v := p.value(`#import-confirm-form [name="upload"]`); v == "" {
		t.Error("the confirm form carries no upload id")
	}
	p.click("#import-confirm")
	p.need("#import-created")
	keys := p.texts("#import-created code")
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "tg_") || !strings.HasPrefix(keys[1], "tg_") {
		t.Fatalf("#import-created shows the keys %v, want two keys", keys)
	}
	if table := p.text("#import-created"); len(missing(table, one, two)) > 0 {
		t.Errorf("#import-created lacks %v", missing(table, one, two))
	}
	if dl := p.attr("#import-keys-csv", "download"); dl != "tollgate-keys.csv" {
		t.Errorf(`#import-keys-csv has download=%q, want "tollgate-keys.csv"`, dl)
	}
	// data:text/csv[;charset=utf-8];base64,<data>: parameters are allowed.
	href := p.attr("#import-keys-csv", "href")
	meta, data, _ := strings.Cut(href, ",")
	if !strings.HasPrefix(meta, "data:text/csv") || !strings.HasSuffix(meta, ";base64") {
		t.Fatalf("#import-keys-csv links to %.60q, want a data:text/csv;base64 URL", href)
	}
	csv, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatalf("#import-keys-csv: %v", err)
	}
	if m := missing(string(csv), one, two, keys[0], keys[1]); len(m) > 0 {
		t.Errorf("the keys CSV lacks %v:\n%s", m, csv)
	}
	p.screenshot("import-result")
	if u := getUser(t, one); u.Project == nil || *u.Project != proj || u.Awarded.String() != "10" {
		t.Errorf("%s is %+v, want project %s with 10 awarded", one, u, proj)
	}
	for _, k := range keys {
		if status := metered(t, k); status != http.StatusOK {
			t.Errorf("an imported key got HTTP %d from GET /v1/models, want 200", status)
		}
	}
}

// A file with a bad row previews it as bad and offers no confirmation.
func TestImportRefusesBadRows(t *testing.T) {
	stem := "impbad" + randomHex(3)
	file := writeCSV(t, "username,project,initial_credits\n"+stem+"-ok,,1\nBad Name!,,2\n")
	p := newPage(t)
	p.signIn(adminToken)
	p.goTo("/admin/users/import")
	p.upload(`#import-form input[type="file"][name="file"]`, file)
	p.click("#import-preview")
	p.need("#import-rows")
	if bad := p.count("#import-rows tr.bad"); bad != 1 {
		t.Errorf("#import-rows marks %d rows bad, want 1", bad)
	}
	if p.has("#import-confirm-form") {
		t.Error("a preview with an error offers #import-confirm-form")
	}
	if got := api(t, "GET", "/users/"+stem+"-ok", nil, nil); got != http.StatusNotFound {
		t.Errorf("the preview created %s-ok (GET answers %d)", stem, got)
	}
}
