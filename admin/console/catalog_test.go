package console

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Keys used in templates: {{.L.T "key"}}, {{$.L.T "key" ...}}.
var templateKey = regexp.MustCompile(`\.L\.T "([a-z0-9_.]+)"`)

// Keys used in Go: T("key"...), renderError(..., "key"), and string
// literals that look like keys handed to render as titles.
var goKey = regexp.MustCompile(`"((?:page|error|action|nav|status|signin|chart|common|role|[a-z_]+)\.[a-z0-9_.]+)"`)

// TestCatalogue: every key a template or the Go code uses is in the
// catalogue, and every entry has both languages. Keys built at run time
// ("prices." + rate) are listed in dynamicKeys.
func TestCatalogue(t *testing.T) {
	used := map[string]string{}
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		for _, m := range templateKey.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = path
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "catalog") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goKey.FindAllStringSubmatch(string(b), -1) {
			if _, isKey := catalog[m[1]]; isKey || looksLikeKey(m[1]) {
				used[m[1]] = f
			}
		}
	}
	for _, rate := range priceRates {
		used["prices."+rate] = "prices.html"
	}
	for key, where := range used {
		if _, ok := catalog[key]; !ok {
			t.Errorf("%s uses %q, which the catalogue lacks", where, key)
		}
	}
	for key, m := range catalog {
		if strings.TrimSpace(m.en) == "" || strings.TrimSpace(m.de) == "" {
			t.Errorf("catalogue entry %q lacks a language (en %q, de %q)", key, m.en, m.de)
		}
		if strings.Count(m.en, "%") != strings.Count(m.de, "%") {
			t.Errorf("catalogue entry %q has different arguments in English and German", key)
		}
	}
}

// looksLikeKey: a literal of the catalogue's own sections.
func looksLikeKey(s string) bool {
	for _, p := range []string{"page.", "error.", "action.", "nav.", "status.", "signin.", "chart.", "common.", "role."} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
