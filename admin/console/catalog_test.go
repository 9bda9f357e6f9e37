package console

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// {{.L.T "key"}} in a template.
	templateKey = regexp.MustCompile(`\.T "([a-z0-9_.]+)"`)
	// {{.L.T (print "prefix." .Value)}}: a key built from a value.
	templateKeyPrefix = regexp.MustCompile(`\.T \(print "([a-z0-9_.]+)"`)
	// A Go string literal shaped like a key: "section.name".
	goKeyLiteral = regexp.MustCompile(`"([a-z][a-z_]*\.[a-z0-9_.]+)"`)
)

// builtKeys are the values each key prefix is completed with at run time.
var builtKeys = map[string][]string{
	"prices.":          priceRates,
	"projects.period.": projectPeriods,
	"usage.group.":     usageGroups,
	"project.status.":  {"active", "inactive"},
	"user.status_":     {"active", "inactive"},
	"project.key.":     {"active", "expired", "revoked"},
	"user.key_status_": {"active", "expired", "revoked"},
	"userlist.key.":    {"active", "expired", "revoked"},
	"error.":           apiErrorCodes, // errorKey
}

// TestCatalogue: every key the templates and pages use is in the
// catalogue with both languages taking the same arguments, and every
// entry of the catalogue is used.
func TestCatalogue(t *testing.T) {
	used := map[string]string{} // key → where
	sections := map[string]bool{}
	for k := range catalog {
		sections[k[:strings.IndexByte(k, '.')+1]] = true
	}
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		for _, m := range templateKey.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = path
		}
		for _, m := range templateKeyPrefix.FindAllStringSubmatch(string(b), -1) {
			values, ok := builtKeys[m[1]]
			if !ok {
				t.Errorf("%s builds keys from %q: list its values in builtKeys", path, m[1])
			}
			for _, v := range values {
				used[m[1]+v] = path
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "catalog.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"([a-z]+\.)" \+`).FindAllStringSubmatch(string(b), -1) {
			for _, v := range builtKeys[m[1]] {
				used[m[1]+v] = f
			}
		}
		for _, m := range goKeyLiteral.FindAllStringSubmatch(string(b), -1) {
			if sections[m[1][:strings.IndexByte(m[1], '.')+1]] && !strings.HasSuffix(m[1], ".csv") {
				used[m[1]] = f
			}
		}
	}
	if len(used) < 200 {
		t.Fatalf("only %d keys found in use: the patterns no longer match the templates", len(used))
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
			t.Errorf("catalogue entry %q takes different arguments in English and German", key)
		}
		if _, ok := used[key]; !ok {
			t.Errorf("catalogue entry %q is not used", key)
		}
	}
}
