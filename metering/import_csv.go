package metering

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// ImportRow is one data row of an import file: the user it asks for, or
// why it cannot be created. Err is empty when the row is valid as far as
// the file alone can tell; whether its project exists and its username is
// free is checked against the database by ImportUsers.
type ImportRow struct {
	Line int // line number in the file (the header is line 1)
	Spec UserSpec
	// Inactive: the status column says the user is deactivated (a
	// users export re-imported keeps its deactivated users so).
	Inactive bool
	// GivenUsername is the username as the file wrote it when it was
	// stored otherwise (folded to lower case), else "".
	GivenUsername string
	// GrantsPaidThrough is the month index through which Spec.Purchased
	// includes the monthly grants (grant_month.go), 0 when the file does
	// not say: then this month's grant is due, as for any new user.
	GrantsPaidThrough int64
	Err               string
}

// ImportFile is a parsed import file: its rows and how it was read.
type ImportFile struct {
	Rows []ImportRow
	// Separator is the field separator found in the header: ",", ";" or
	// "\t".
	Separator string
	// Ignored are the header's columns that describe a user's state rather
	// than what to create (a users export's balances and times); their
	// cells are not read.
	Ignored []string
}

// importSeparators are the separators spreadsheets write: ',' and, where
// the decimal separator is a comma (European Excel), ';'; tab for "text".
var importSeparators = []rune{',', ';', '\t'}

// ParseImportCSV reads a user import file. File-level problems (not CSV,
// no header, missing or unknown columns) are an *InvalidError; row-level
// problems are reported in the row's Err so that every bad row can be
// shown at once. It is pure, so it can be fuzzed.
//
// Accepted: UTF-8 with or without a byte-order mark, UTF-16 with one
// (Excel's "Unicode text"), a first line "sep=;" (Excel's hint), the
// separators ',', ';' and tab (found from the header), CRLF line ends,
// quoted fields, spaces around values and column names, header names in
// any case. Empty lines and lines whose fields are all blank (trailing
// ",,," lines from spreadsheets) are skipped. The columns are described at
// importColumns.
func ParseImportCSV(data []byte) (ImportFile, error) {
	data, err := importText(data)
	if err != nil {
		return ImportFile{}, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return ImportFile{}, invalid("body", "The CSV file is empty; its first line must be the header: "+importHeaderHint)
	}
	lineOffset := 0
	sep, hinted := sepHint(data)
	if hinted {
		_, data, _ = bytes.Cut(data, []byte("\n"))
		lineOffset = 1
	} else if sep, err = detectSeparator(data); err != nil {
		return ImportFile{}, err
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = sep
	r.FieldsPerRecord = -1 // checked per row, so one short row does not hide the others
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return ImportFile{}, invalid("body", "The CSV file has no header; its first line must be the header: "+importHeaderHint)
	}
	if err != nil {
		return ImportFile{}, csvError(err, lineOffset)
	}
	cols, err := importColumns(header)
	if err != nil {
		return ImportFile{}, err
	}
	file := ImportFile{Separator: string(sep), Ignored: cols.ignored}
	firstLine := map[string]int{} // stored username → line of its first row
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ImportFile{}, csvError(err, lineOffset)
		}
		line, _ := r.FieldPos(0)
		line += lineOffset
		if allBlank(rec) {
			continue
		}
		row := parseImportRecord(rec, cols, len(header), sep)
		row.Line = line
		if name := row.Spec.Username; ValidName(name) {
			if first, dup := firstLine[name]; !dup {
				firstLine[name] = line
			} else if row.Err == "" {
				row.Err = fmt.Sprintf("The username %s is also on line %d (usernames are compared in lower case).",
					QuoteValue(name), first)
			}
		}
		file.Rows = append(file.Rows, row)
	}
	if len(file.Rows) == 0 {
		return ImportFile{}, invalid("body", "The CSV file has a header but no rows")
	}
	if err := checkImportTotals(file.Rows); err != nil {
		return ImportFile{}, err
	}
	return file, nil
}

// importHeaderHint is the smallest valid header, for messages.
const importHeaderHint = "username,project,initial_credits"

// importText returns the file as UTF-8 without a byte-order mark, its
// lines ending in LF or CRLF. UTF-16 needs its byte-order mark (Excel
// writes one); an odd number of bytes cannot be UTF-16.
func importText(data []byte) ([]byte, error) {
	var order func([]byte) uint16
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		order = func(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		order = func(b []byte) uint16 { return uint16(b[1]) | uint16(b[0])<<8 }
	default:
		data = bytes.TrimPrefix(data, []byte("\ufeff"))
		if !bytes.Contains(data, []byte("\n")) {
			// Classic Mac line ends (Excel's "CSV (Macintosh)"): CR alone.
			data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
		}
		return data, nil
	}
	data = data[2:]
	if len(data)%2 != 0 {
		return nil, invalid("body", "The file starts like UTF-16 text but has an odd number of bytes; save it as CSV UTF-8")
	}
	units := make([]uint16, len(data)/2)
	for i := range units {
		units[i] = order(data[2*i:])
	}
	return importText([]byte(string(utf16.Decode(units))))
}

// sepHint reads Excel's "sep=;" first line, which names the separator.
func sepHint(data []byte) (rune, bool) {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	first = bytes.TrimRight(first, "\r")
	if len(first) == 5 && strings.EqualFold(string(first[:4]), "sep=") {
		for _, s := range importSeparators {
			if rune(first[4]) == s {
				return s, true
			}
		}
	}
	return 0, false
}

// detectSeparator finds the separator the header is written with: the one
// that splits the first line into the most column names an import knows.
// A first line in which no separator finds one is not a header.
func detectSeparator(data []byte) (rune, error) {
	best, bestKnown := rune(0), 0
	var firstErr error
	for _, sep := range importSeparators {
		r := csv.NewReader(bytes.NewReader(data))
		r.Comma = sep
		r.FieldsPerRecord = -1
		header, err := r.Read()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		known := 0
		for _, h := range header {
			if _, ok := importColumnRoles[columnName(h)]; ok {
				known++
			}
		}
		if known > bestKnown {
			best, bestKnown = sep, known
		}
	}
	if bestKnown > 0 {
		return best, nil
	}
	if firstErr != nil && !errors.Is(firstErr, io.EOF) {
		return 0, csvError(firstErr, 0)
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	return 0, invalid("header", fmt.Sprintf("The first line must be the header: %s (it reads %s)",
		importHeaderHint, QuoteValue(strings.TrimRight(string(first), "\r"))))
}

// csvError turns a CSV syntax error into a 400 naming the line: such a
// file cannot be split into rows reliably, so no row is judged.
func csvError(err error, lineOffset int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		what := pe.Err.Error()
		switch {
		case errors.Is(pe.Err, csv.ErrQuote):
			what = "a quote is not closed, or a quoted field has text after its closing quote"
		case errors.Is(pe.Err, csv.ErrBareQuote):
			what = `a field that is not quoted contains a quote (write "" inside a quoted field)`
		}
		return invalid("body", fmt.Sprintf("Line %d, column %d cannot be read as CSV: %s", pe.StartLine+lineOffset, pe.Column, what))
	}
	return invalid("body", "The file cannot be read as CSV ("+err.Error()+")")
}

func allBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// checkImportTotals refuses a file whose valid rows add up to more credits
// than a balance may hold, per bucket: the totals an import shows and
// records in its audit entry stay exact.
func checkImportTotals(rows []ImportRow) error {
	var sums [3]Credits
	for _, r := range rows {
		if r.Err != "" {
			continue
		}
		for i, c := range []Credits{r.Spec.InitialCredits, r.Spec.Purchased, r.Spec.MonthlyGrant} {
			if sums[i] += c; sums[i] > MaxCredits {
				name := []string{"initial_credits", "purchased", "monthly_grant"}[i]
				return invalid("body", fmt.Sprintf("The %s of this file add up to more than %s credits; split it into smaller imports",
					name, MaxCredits))
			}
		}
	}
	return nil
}
