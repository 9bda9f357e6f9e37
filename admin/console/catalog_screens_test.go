package console

import (
	"regexp"
	"testing"
)

// screenKey is a catalogue key written literally in a template.
var screenKey = regexp.MustCompile(`\.T "([a-z0-9_.]+)"`)

// TestProjectUsageAuditStringsAreInBothLanguages checks that every key the
// projects, usage and audit screens use, literal or built from a value,
// is in the catalogue in English and German.
func TestProjectUsageAuditStringsAreInBothLanguages(t *testing.T) {
	var used []string
	for _, name := range []string{"projects", "project", "project_delete", "usage", "audit"} {
		raw, err := templateFS.ReadFile("templates/" + name + ".html")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range screenKey.FindAllStringSubmatch(string(raw), -1) {
			used = append(used, m[1])
		}
	}
	for _, p := range projectPeriods {
		used = append(used, "projects.period."+p)
	}
	for _, g := range usageGroups {
		used = append(used, "usage.group."+g)
	}
	for _, s := range []string{"active", "inactive"} {
		used = append(used, "project.status."+s)
	}
	for _, s := range []string{"active", "expired", "revoked"} {
		used = append(used, "project.key."+s)
	}
	used = append(used, "page.projects", "page.project", "page.project_delete", "page.usage", "page.audit",
		"projects.created", "project.saved", "project.unchanged", "project.pool_changed", "project.settled",
		"project.deleted", "usage.chart", "usage.no_project", "usage.no_model")
	if len(used) < 50 {
		t.Fatalf("only %d keys found: the pattern no longer matches the templates", len(used))
	}
	for _, k := range used {
		m, ok := catalog[k]
		if !ok {
			t.Errorf("catalogue key %q is missing", k)
			continue
		}
		if m.en == "" || m.de == "" {
			t.Errorf("catalogue key %q lacks a language: %+v", k, m)
		}
	}
}
