package metering

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// parseImportRecord validates one row; the first problem found is
// reported, as a sentence. sep is the file's separator: in a file
// separated by ';' or tab (written where the decimal separator is a
// comma), amounts may use a decimal comma.
func parseImportRecord(rec []string, cols importCols, width int, sep rune) ImportRow {
	var row ImportRow
	get := func(role columnRole) string {
		i, ok := cols.idx[role]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	fail := func(format string, args ...any) ImportRow {
		row.Err = fmt.Sprintf(format, args...)
		return row
	}
	s := &row.Spec
	s.Username = get(colUsername)
	if len(rec) != width {
		return fail("The row has %s; the header has %s.", Plural(int64(len(rec)), "field", "fields"),
			Plural(int64(width), "field", "fields"))
	}
	if s.Username == "" {
		return fail("The username is empty.")
	}
	if name := foldASCII(s.Username); ValidName(name) {
		if name != s.Username {
			row.GivenUsername, s.Username = s.Username, name
		}
	} else {
		return fail("The username %s %s.", QuoteValue(s.Username), NameProblem(name))
	}
	if p := get(colProject); p != "" {
		s.Project = foldASCII(p)
		if problem := NameProblem(s.Project); problem != "" {
			return fail("The project name %s %s (leave the cell empty for no project).", QuoteValue(p), problem)
		}
	}
	for _, f := range []struct {
		role columnRole
		name string
		dst  *Credits
	}{{colInitial, "initial_credits", &s.InitialCredits}, {colPurchased, "purchased", &s.Purchased},
		{colGrant, "monthly_grant", &s.MonthlyGrant}} {
		c, problem := parseImportAmount(get(f.role), sep)
		if problem != "" {
			return fail("The %s %s %s.", f.name, QuoteValue(get(f.role)), problem)
		}
		*f.dst = c
	}
	switch v := strings.ToLower(get(colPartner)); v {
	case "", "false", "no", "0":
	case "true", "yes", "1":
		s.Partner = true
	default:
		return fail("The partner value %s must be true or false.", QuoteValue(get(colPartner)))
	}
	switch v := strings.ToLower(get(colStatus)); v {
	case "", "active":
	case "inactive":
		row.Inactive = true
	default:
		return fail("The status %s must be active or inactive.", QuoteValue(get(colStatus)))
	}
	if v := get(colGrantsPaid); v != "" {
		m, ok := parseMonth(v)
		if !ok {
			return fail("The grants_paid_through %s must be a month written YYYY-MM, such as 2026-11, or empty.", QuoteValue(v))
		}
		row.GrantsPaidThrough = m
	}
	if v := get(colKeyExpires); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fail("The key_expires_at %s must be an RFC 3339 time such as 2026-12-31T23:59:59Z, or empty for a key that does not expire.",
				QuoteValue(v))
		}
		s.KeyExpiresAt = &t
	}
	return row
}

// foldASCII folds the ASCII letters A-Z to lower case and leaves every
// other byte as it is: Unicode folding would make a name valid that is
// not ("K", the Kelvin sign, folds to "k"), and invalid bytes must stay
// visible as what they are.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// groupedThousands is a number written with '.' between groups of three
// digits: "1.000" is a thousand where ',' is the decimal separator, and
// one where '.' is.
var groupedThousands = regexp.MustCompile(`^[+]?[1-9][0-9]{0,2}(\.[0-9]{3})+$`)

// parseImportAmount reads a credits cell (empty is 0), or says as a
// predicate what is wrong with it.
func parseImportAmount(v string, sep rune) (Credits, string) {
	if v == "" {
		return 0, ""
	}
	if sep != ',' {
		switch {
		case strings.Contains(v, ",") && strings.Contains(v, "."):
			return 0, "is not an amount: write it without a thousands separator, such as 1234,5 or 1234.5"
		case strings.Count(v, ",") == 1:
			v = strings.Replace(v, ",", ".", 1) // a decimal comma
		case groupedThousands.MatchString(v):
			return 0, fmt.Sprintf("is ambiguous in a file separated by %s, where a dot may separate thousands: write %s for that, or use a decimal comma",
				separatorName(sep), strings.ReplaceAll(v, ".", ""))
		}
	}
	c, err := ParseCredits(v)
	switch {
	case errors.Is(err, ErrCreditsRange) || err == nil && c > MaxCredits:
		return 0, "is out of range: at most " + MaxCredits.String()
	case err != nil && sep == ',' && strings.Contains(v, ","):
		return 0, "is not an amount: in a file separated by commas, write a decimal point, such as 12.5"
	case err != nil:
		return 0, "is not an amount: write a decimal number with at most 6 fractional digits, such as 12.5"
	case c < 0:
		return 0, "must not be negative"
	}
	return c, ""
}

func separatorName(sep rune) string {
	if sep == '\t' {
		return "tabs"
	}
	return fmt.Sprintf("%q", string(sep))
}
