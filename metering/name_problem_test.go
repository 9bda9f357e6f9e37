package metering_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// TestNameProblemAgreesWithThePatterns: the words say "valid" exactly when
// the regular expressions do, and say what is wrong otherwise.
func TestNameProblemAgreesWithThePatterns(t *testing.T) {
	t.Parallel()
	names := []string{"", "a", "ann", "a.b_c-d", "0", strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("é", 63), ".ann", "_ann", "-ann", "Ann", "ann lee", "ann\x00", "ann\xff", "annä", "a/b", "a:b",
		"openai/gpt-4o", "llama3:8b", "GPT-4", "/x", strings.Repeat("m", 128), strings.Repeat("m", 129), "ann\u2028"}
	for _, s := range names {
		require.Equal(t, metering.ValidName(s), metering.NameProblem(s) == "", "name %q: %q", s, metering.NameProblem(s))
		require.Equal(t, metering.ValidModel(s), metering.ModelNameProblem(s) == "", "model %q: %q", s, metering.ModelNameProblem(s))
	}
	for s, want := range map[string]string{
		"":                      "is empty",
		"ann lee":               `contains a space; only lower-case letters a-z, digits 0-9, ".", "_" and "-" are allowed`,
		"Ann":                   `contains the upper-case letter "A"; it must be lower case`,
		".ann":                  `starts with "."; it must start with a letter or a digit`,
		"ann\x00":               "contains the control character U+0000; only",
		"ann\xff":               "contains a byte that is not UTF-8",
		"annä":                  `contains "ä" (U+00E4)`,
		strings.Repeat("a", 64): "is 64 characters long; at most 63 are allowed",
	} {
		require.True(t, strings.HasPrefix(metering.NameProblem(s), want), "%q: %q", s, metering.NameProblem(s))
	}
	require.Equal(t, `contains a space; only letters, digits, ".", "_", ":", "/" and "-" are allowed`, metering.ModelNameProblem("gpt 4"))
	require.Equal(t, `"`+strings.Repeat("x", 64)+`"…`, metering.QuoteValue(strings.Repeat("x", 100)))
	require.Equal(t, `"a\x00b"`, metering.QuoteValue("a\x00b"))
}
