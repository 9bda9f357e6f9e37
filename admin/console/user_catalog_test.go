package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestUserCatalogue checks that every catalogue key the user page's
// templates and code use exists, in English and German.
func TestUserCatalogue(t *testing.T) {
	used := map[string]bool{}
	keyRef := regexp.MustCompile(`\.T "([a-z0-9_.]+)"`)
	for _, name := range []string{"user.html", "user_confirm.html", "user_keyshow.html"} {
		b, err := fs.ReadFile(templateFS, "templates/"+name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRef.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	// Keys built at run time.
	for _, s := range []string{"active", "inactive"} {
		used["user.status_"+s] = true
	}
	for _, s := range []string{"active", "expired", "revoked"} {
		used["user.key_status_"+s] = true
	}
	for _, a := range userActions {
		used[a.Title], used[a.Question], used[a.Hint], used[a.Button] = true, true, true, true
	}
	for _, k := range []string{"page.user", "page.user_key", "page.user_new_key", "user.unchanged", "user.saved",
		"user.credits_done", "user.transfer_done", "user.deactivated", "user.activated", "user.deleted",
		"user.not_text", "user.usage_chart"} {
		used[k] = true
	}
	for k := range used {
		m, ok := catalog[k]
		if !ok {
			t.Errorf("catalogue key %q is used but missing", k)
			continue
		}
		if m.en == "" || m.de == "" {
			t.Errorf("catalogue key %q lacks a language", k)
		}
		if strings.Count(m.en, "%") != strings.Count(m.de, "%") {
			t.Errorf("catalogue key %q: the languages take different arguments", k)
		}
	}
	for k := range catalogUser {
		if !used[k] {
			t.Errorf("catalogue key %q is not used", k)
		}
	}
}
