package metering

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Names are checked with a regular expression (ValidName, ValidModel), but
// an admin is told in words what is wrong with one: NameProblem and
// ModelNameProblem say it, and the tests hold them to the expressions.

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName reports whether s is a valid username or project name.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// nameRule is what a kind of name may hold.
type nameRule struct {
	max      int    // characters
	upper    bool   // upper-case letters allowed
	extra    string // punctuation allowed after the first character
	describe string // what may appear, for the message
}

var (
	userNameRule  = nameRule{max: 63, extra: "._-", describe: `lower-case letters a-z, digits 0-9, ".", "_" and "-"`}
	modelNameRule = nameRule{max: 128, upper: true, extra: "._:/-", describe: `letters, digits, ".", "_", ":", "/" and "-"`}
)

// NameProblem says why s is not a valid username or project name, as a
// clause that follows the name ("contains a space; ..."); "" when it is
// valid (exactly when ValidName(s)).
func NameProblem(s string) string { return userNameRule.problem(s) }

// ModelNameProblem is NameProblem for model names (ValidModel).
func ModelNameProblem(s string) string { return modelNameRule.problem(s) }

func (r nameRule) problem(s string) string {
	if s == "" {
		return "is empty"
	}
	if n := utf8.RuneCountInString(s); n > r.max {
		return fmt.Sprintf("is %d characters long; at most %d are allowed", n, r.max)
	}
	if c := s[0]; !r.alnum(c) && c < utf8.RuneSelf && strings.IndexByte(r.extra, c) >= 0 {
		return fmt.Sprintf("starts with %q; it must start with a letter or a digit", string(c))
	}
	for i, c := range s {
		switch {
		case c < utf8.RuneSelf && (r.alnum(byte(c)) || i > 0 && strings.IndexByte(r.extra, byte(c)) >= 0):
			continue
		case c >= 'A' && c <= 'Z':
			return fmt.Sprintf("contains the upper-case letter %q; it must be lower case", string(c))
		}
		return "contains " + describeRune(c) + "; only " + r.describe + " are allowed"
	}
	return ""
}

func (r nameRule) alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || r.upper && c >= 'A' && c <= 'Z'
}

// describeRune names a character for a message, safely: control and
// invalid bytes are described, not printed.
func describeRune(c rune) string {
	switch {
	case c == ' ':
		return "a space"
	case c == utf8.RuneError:
		return "a byte that is not UTF-8"
	case isControl(c) || c == '\u2028' || c == '\u2029':
		return fmt.Sprintf("the control character %U", c)
	}
	if c >= utf8.RuneSelf {
		return fmt.Sprintf("%q (%U)", string(c), c) // "K" (U+212A) is not "K"
	}
	return fmt.Sprintf("%q", string(c))
}

// QuoteValue quotes a value for a message: Go-quoted (control characters
// escaped), and cut after 64 bytes with an ellipsis, so a hostile value
// cannot make a message huge.
func QuoteValue(s string) string {
	if len(s) <= 64 {
		return fmt.Sprintf("%q", s)
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// invalidName is the 400 for a name that is not valid: "The username
// "Ann Lee" contains a space; only ... are allowed."
func invalidName(field, what, s, problem string) error {
	if s == "" {
		return invalid(field, fmt.Sprintf("The %s is empty", what))
	}
	return invalid(field, fmt.Sprintf("The %s %s %s", what, QuoteValue(s), problem))
}
