package metering

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Columns of a user import file. The first three are required (the
// contract's header); the others are optional; order is free.
var (
	importRequired = []string{"username", "project", "initial_credits"}
	importOptional = []string{"monthly_grant", "partner", "purchased"}
)

// ImportRow is one data row of an import file: the user it asks for, or
// why it cannot be created. Err is empty when the row is valid as far as
// the file alone can tell; whether its project exists and its username is
// free is checked against the database by ImportUsers.
type ImportRow struct {
	Line int // line number in the file (the header is line 1)
	Spec UserSpec
	Err  string
}

// ParseImportCSV reads a user import file. File-level problems (not CSV,
// no header, missing or unknown columns) are an *InvalidError; row-level
// problems are reported in the row's Err so that every bad row can be
// shown at once. It is pure, so it can be fuzzed.
//
// Accepted: a UTF-8 byte-order mark (spreadsheets write one), CRLF line
// ends, quoted fields, spaces around values and column names, header names
// in any case. Empty lines and lines whose fields are all blank (trailing
// ",,," lines from spreadsheets) are skipped.
func ParseImportCSV(data []byte) ([]ImportRow, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1 // checked per row, so one short row does not hide the others
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, invalid("body", "the CSV file is empty; it needs the header username,project,initial_credits")
	}
	if err != nil {
		return nil, csvError(err)
	}
	col, err := importColumns(header)
	if err != nil {
		return nil, err
	}
	var rows []ImportRow
	firstLine := map[string]int{} // username → line of its first row
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := r.FieldPos(0)
		if allBlank(rec) {
			continue
		}
		row := parseImportRecord(rec, col, len(header))
		row.Line = line
		if row.Spec.Username != "" {
			if first, dup := firstLine[row.Spec.Username]; dup {
				if row.Err == "" {
					row.Err = fmt.Sprintf("duplicate username %q: also on line %d", row.Spec.Username, first)
				}
			} else {
				firstLine[row.Spec.Username] = line
			}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, invalid("body", "the CSV file has a header but no rows")
	}
	return rows, nil
}

// csvError turns a CSV syntax error into a 400 naming the line: such a
// file cannot be split into rows reliably, so no row is judged.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return invalid("body", fmt.Sprintf("line %d, column %d: %v", pe.StartLine, pe.Column, pe.Err))
	}
	return invalid("body", "not a CSV file: "+err.Error())
}

// importColumns maps each known column name to its index in the header.
func importColumns(header []string) (map[string]int, error) {
	col := make(map[string]int, len(header))
	var unknown, dups []string
	known := map[string]bool{}
	for _, c := range append(importRequired, importOptional...) {
		known[c] = true
	}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		switch {
		case !known[name]:
			unknown = append(unknown, fmt.Sprintf("%q", strings.TrimSpace(h)))
		case hasCol(col, name):
			dups = append(dups, name)
		default:
			col[name] = i
		}
	}
	if len(unknown) > 0 {
		return nil, invalid("header", fmt.Sprintf("unknown column(s) %s; the columns are %s (required) and %s (optional)",
			strings.Join(unknown, ", "), strings.Join(importRequired, ","), strings.Join(importOptional, ",")))
	}
	if len(dups) > 0 {
		return nil, invalid("header", "column(s) given twice: "+strings.Join(dups, ", "))
	}
	var missing []string
	for _, c := range importRequired {
		if !hasCol(col, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, invalid("header", "missing required column(s): "+strings.Join(missing, ", "))
	}
	return col, nil
}

func hasCol(col map[string]int, name string) bool { _, ok := col[name]; return ok }

func allBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// parseImportRecord validates one row. The first problem found is reported.
func parseImportRecord(rec []string, col map[string]int, width int) ImportRow {
	var row ImportRow
	get := func(name string) string {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	s := &row.Spec
	s.Username, s.Project = get("username"), get("project")
	fail := func(format string, args ...any) ImportRow {
		row.Err = fmt.Sprintf(format, args...)
		return row
	}
	if len(rec) != width {
		return fail("has %d fields, the header has %d", len(rec), width)
	}
	switch {
	case s.Username == "":
		return fail("username is required")
	case !ValidName(s.Username):
		return fail("username %q is not valid: it must match ^[a-z0-9][a-z0-9._-]{0,62}$ (lower case letters, digits, '.', '_', '-')", s.Username)
	case s.Project != "" && !ValidName(s.Project):
		return fail("project %q is not a valid project name (leave it empty for no project)", s.Project)
	}
	for _, f := range []struct {
		name string
		dst  *Credits
	}{{"initial_credits", &s.InitialCredits}, {"purchased", &s.Purchased}, {"monthly_grant", &s.MonthlyGrant}} {
		v := get(f.name)
		if v == "" {
			continue
		}
		c, err := ParseCredits(v)
		switch {
		case errors.Is(err, ErrCreditsRange) || err == nil && c > MaxCredits:
			return fail("%s %q is out of range: at most %s", f.name, v, MaxCredits)
		case err != nil:
			return fail("%s %q is not an amount: use a decimal number with at most 6 fractional digits, such as 12.5", f.name, v)
		case c < 0:
			return fail("%s %q must not be negative", f.name, v)
		}
		*f.dst = c
	}
	switch p := strings.ToLower(get("partner")); p {
	case "", "false", "no", "0":
	case "true", "yes", "1":
		s.Partner = true
	default:
		return fail("partner %q must be true or false", get("partner"))
	}
	return row
}
