package metering

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"POST /v1/chat/completions", "POST /v1/chat/completions"},
		{"/v1/x\xff\x00y", "/v1/x\uFFFD\uFFFDy"},
		{"tab\there", "tab\uFFFDhere"},
		{"del\x7f c1\u0085", "del\uFFFD c1\uFFFD"},
		{"grüße 日本", "grüße 日本"},
		{"\xe6\x97", "\uFFFD\uFFFD"}, // a cut-off 3-byte character
	}
	for _, c := range cases {
		if got := CleanText(c.in, 100); got != c.want {
			t.Errorf("CleanText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Cut at a character boundary, never inside one.
	if got := CleanText("ab日本", 4); got != "ab" {
		t.Errorf("CleanText cut = %q, want %q", got, "ab")
	}
	if got := CleanText(strings.Repeat("x", 600), MaxRequestLabel); len(got) != MaxRequestLabel {
		t.Errorf("len = %d, want %d", len(got), MaxRequestLabel)
	}
}

func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"", "/v1/x\xff\x00y", "grüße", "\xe6\x97\xa5\x00", "\u0085\u00a0"} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := CleanText(s, max)
		if !utf8.ValidString(got) || len(got) > max {
			t.Fatalf("CleanText(%q, %d) = %q: invalid or too long", s, max, got)
		}
		for _, r := range got {
			if isControl(r) {
				t.Fatalf("CleanText(%q) kept control %U", s, r)
			}
		}
		if CleanText(got, max) != got {
			t.Fatalf("CleanText is not idempotent on %q", s)
		}
		if CheckText("note", got, max) != nil {
			t.Fatalf("CheckText refuses CleanText's output %q", got)
		}
	})
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	ok := []string{"", "refund for March", "line one\nline two\r\n\tindented", "Grüße 😀"}
	for _, s := range ok {
		if err := CheckText("note", s, MaxNoteLength); err != nil {
			t.Errorf("CheckText(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{"nul\x00byte", "bad\xffutf8", "bell\a", strings.Repeat("x", MaxNoteLength+1)}
	for _, s := range bad {
		err := CheckText("note", s, MaxNoteLength)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Field != "note" {
			t.Errorf("CheckText(%q) = %v, want an InvalidError for field note", s, err)
		}
	}
}
