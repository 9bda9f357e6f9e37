package admin

import (
	"encoding/csv"
	"io"
)

// Every CSV the project writes (usage reports, user exports, the CLI's
// import results) goes through CSVWriter, so that no cell a client or an
// admin chose (a model name, a username, an error text) opens in a
// spreadsheet as a live formula.

// CSVWriter is an encoding/csv Writer whose cells are made safe by
// SafeCSVCell.
type CSVWriter struct {
	w   *csv.Writer
	rec []string
}

// NewCSVWriter returns a CSVWriter writing to w.
func NewCSVWriter(w io.Writer) *CSVWriter { return &CSVWriter{w: csv.NewWriter(w)} }

// Write writes one record, each cell through SafeCSVCell; record itself is
// left as it was.
func (c *CSVWriter) Write(record []string) error {
	c.rec = c.rec[:0]
	for _, cell := range record {
		c.rec = append(c.rec, SafeCSVCell(cell))
	}
	return c.w.Write(c.rec)
}

// Flush writes any buffered data to the underlying writer.
func (c *CSVWriter) Flush() { c.w.Flush() }

// Error reports an error from a previous Write or Flush.
func (c *CSVWriter) Error() error { return c.w.Error() }

// SafeCSVCell neutralises a cell that a spreadsheet would read as a
// formula, the OWASP way: one starting with = + - @, a tab or a carriage
// return gets a leading single quote, which spreadsheets show as text. A
// plain decimal number such as -200 or -12.5 (a negative credits amount)
// stays as it is, so it is still a number.
func SafeCSVCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '-':
		if isDecimal(s[1:]) {
			return s
		}
		return "'" + s
	case '=', '+', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// isDecimal reports whether s is digits with at most one decimal point
// between digits, as Credits and counts print.
func isDecimal(s string) bool {
	digits, point := 0, -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && point < 0 && digits > 0:
			point = i
		default:
			return false
		}
	}
	return digits > 0 && point != len(s)-1
}
