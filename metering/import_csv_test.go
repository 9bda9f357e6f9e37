package metering_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestParseImportCSV(t *testing.T) {
	t.Parallel()
	in := "\ufeff Username , initial_credits,project,Partner,monthly_grant,purchased\r\n" +
		"ann,12.5,teachers,true,10,0.000001\r\n" +
		"\r\n" +
		`"bob","0",,no,,` + "\r\n" +
		" carl ,  ,\" Teachers \",,,\r\n" +
		",,,,,\r\n" + // a spreadsheet's blank line
		"\"dan\nx\",1,,,,\r\n" + // a quoted newline: the row starts on line 7
		"Eve,1,,,,\n" +
		"fay,1.1234567,,,,\n" +
		"gus,-1,,,,\n" +
		"hal,1e3,,,,\n" +
		"ivy,9007199254.740992,,,,\n" +
		"ANN,1,,,,\n" +
		"jo,1,,maybe,,\n" +
		"kim,1,Bad Project,,,\n" +
		"lea,1\n" +
		"mo,,,,x,\n" +
		"\u212aim,1,,,,\n" + // the Kelvin sign folds to "k" in Unicode, not here
		"\"1,5\",1,,,,\n"
	file, err := metering.ParseImportCSV([]byte(in))
	require.NoError(t, err)
	require.Equal(t, ",", file.Separator)
	rows := file.Rows
	type want struct {
		line int
		user string
		err  string // substring; "" for a valid row
	}
	wants := []want{
		{2, "ann", ""},
		{4, "bob", ""},
		{5, "carl", ""},
		{7, "dan\nx", `The username "dan\nx" contains the control character U+000A`},
		{9, "eve", ""},
		{10, "fay", `The initial_credits "1.1234567" is not an amount: write a decimal number with at most 6 fractional digits`},
		{11, "gus", `The initial_credits "-1" must not be negative.`},
		{12, "hal", ""},
		{13, "ivy", `The initial_credits "9007199254.740992" is out of range: at most 9007199254.740991.`},
		{14, "ann", `The username "ann" is also on line 2 (usernames are compared in lower case).`},
		{15, "jo", `The partner value "maybe" must be true or false.`},
		{16, "kim", `The project name "Bad Project" contains a space`},
		{17, "lea", "The row has 2 fields; the header has 6 fields."},
		{18, "mo", `The monthly_grant "x" is not an amount`},
		{19, "\u212aim", "The username \"\u212aim\" contains \"\u212a\" (U+212A)"},
		{20, "1,5", `The username "1,5" contains ","`},
	}
	require.Len(t, rows, len(wants))
	for i, w := range wants {
		r := rows[i]
		require.Equal(t, w.line, r.Line, "row %d", i)
		require.Equal(t, w.user, r.Spec.Username, "row %d", i)
		if w.err == "" {
			require.Empty(t, r.Err, "row %d", i)
		} else {
			require.Contains(t, r.Err, w.err, "row %d", i)
			require.True(t, strings.HasSuffix(r.Err, "."), "row %d: %s", i, r.Err)
		}
	}
	ann := rows[0].Spec
	require.Equal(t, metering.UserSpec{Username: "ann", Project: "teachers", InitialCredits: 12_500_000,
		Purchased: 1, MonthlyGrant: 10 * metering.Micro, Partner: true}, ann)
	require.Equal(t, metering.UserSpec{Username: "bob"}, rows[1].Spec)
	require.Equal(t, "teachers", rows[2].Spec.Project, "spaces inside quotes are trimmed, and the name folded")
	require.Equal(t, "Eve", rows[4].GivenUsername, "upper case is folded and shown")
	require.Empty(t, rows[0].GivenUsername)
	require.Equal(t, 1000*metering.Micro, rows[7].Spec.InitialCredits)
}

// TestParseImportCSVSpreadsheets reads what spreadsheets save: ';' with
// decimal commas (European Excel), tabs, Excel's "sep=" line, UTF-16, and
// a users export with its extra columns.
func TestParseImportCSVSpreadsheets(t *testing.T) {
	t.Parallel()
	utf16le := func(s string) []byte {
		out := []byte{0xff, 0xfe}
		for _, u := range utf16.Encode([]rune(s)) {
			out = append(out, byte(u), byte(u>>8))
		}
		return out
	}
	for name, tc := range map[string]struct {
		data []byte
		sep  string
	}{
		"semicolons": {[]byte("username;project;initial_credits;purchased\r\nAnn;p;12,5;1.25\r\nbob;;\"3,000001\";\r\n"), ";"},
		"tabs":       {[]byte("username\tproject\tinitial_credits\tpurchased\nann\tp\t12,5\t1.25\nbob\t\t3.000001\t\n"), "\t"},
		"sep line":   {[]byte("sep=;\nusername;project;initial_credits;purchased\nann;p;12,5;1.25\nbob;;3,000001;\n"), ";"},
		"mac":        {[]byte("username;project;initial_credits;purchased\rann;p;12,5;1.25\rbob;;3,000001;\r"), ";"},
		"utf-16":     {utf16le("username\tproject\tinitial_credits\tpurchased\r\nann\tp\t12,5\t1.25\r\nbob\t\t3.000001\t\r\n"), "\t"},
	} {
		file, err := metering.ParseImportCSV(tc.data)
		require.NoError(t, err, name)
		require.Equal(t, tc.sep, file.Separator, name)
		require.Len(t, file.Rows, 2, name)
		for _, r := range file.Rows {
			require.Empty(t, r.Err, "%s line %d", name, r.Line)
		}
		require.Equal(t, metering.UserSpec{Username: "ann", Project: "p", InitialCredits: 12_500_000, Purchased: 1_250_000},
			file.Rows[0].Spec, name)
		require.Equal(t, metering.UserSpec{Username: "bob", InitialCredits: 3_000_001}, file.Rows[1].Spec, name)
		line := 3
		if name == "sep line" {
			line = 4 // the sep= line is line 1
		}
		require.Equal(t, line, file.Rows[1].Line, name)
	}

	// Dots that may group thousands are not guessed at where commas are decimal.
	file, err := metering.ParseImportCSV([]byte("username;project;initial_credits\nann;;1.000\nbob;;1.000,5\ncat;;0.125\ndan;;1.5\n"))
	require.NoError(t, err)
	require.Contains(t, file.Rows[0].Err, `The initial_credits "1.000" is ambiguous in a file separated by ";"`)
	require.Contains(t, file.Rows[1].Err, "without a thousands separator")
	require.Empty(t, file.Rows[2].Err)
	require.Equal(t, metering.Credits(125_000), file.Rows[2].Spec.InitialCredits)
	require.Equal(t, metering.Credits(1_500_000), file.Rows[3].Spec.InitialCredits)

	// A users export imports: awarded is the initial credits, status and the
	// key's expiry are read, and the state columns are not.
	export := "username,project,personal_credits,effective_credits,status,last_activity_at,awarded,purchased," +
		"allowance_remaining,pool_available,monthly_grant,partner,created_at,key_status,key_created_at,key_expires_at,grants_paid_through\n" +
		"ann,p,12,99,inactive,2026-01-02T03:04:05Z,10,2,5,82,3,true,2025-01-01T00:00:00Z,revoked,2025-01-01T00:00:00Z,2027-01-01T00:00:00Z,2026-11\n" +
		"bob,,0,0,active,,0,0,0,0,0,false,2025-01-01T00:00:00Z,active,2025-01-01T00:00:00Z,,\n" +
		"cid,,0,0,active,,0,0,0,0,0,false,2025-01-01T00:00:00Z,active,2025-01-01T00:00:00Z,,2026-13\n" +
		"dan,,0,0,asleep,,0,0,0,0,0,false,2025-01-01T00:00:00Z,active,2025-01-01T00:00:00Z,,\n" +
		"eve,,0,0,active,,0,0,0,0,0,false,2025-01-01T00:00:00Z,active,2025-01-01T00:00:00Z,31.12.2026 00:00,\n"
	file, err = metering.ParseImportCSV([]byte(export))
	require.NoError(t, err)
	require.Equal(t, []string{"allowance_remaining", "created_at", "effective_credits", "key_created_at", "key_status",
		"last_activity_at", "personal_credits", "pool_available"}, file.Ignored)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, metering.UserSpec{Username: "ann", Project: "p", InitialCredits: 10 * metering.Micro,
		Purchased: 2 * metering.Micro, MonthlyGrant: 3 * metering.Micro, Partner: true, KeyExpiresAt: &exp}, file.Rows[0].Spec)
	require.True(t, file.Rows[0].Inactive)
	require.Equal(t, int64(2026*12+10), file.Rows[0].GrantsPaidThrough)
	require.Equal(t, metering.UserSpec{Username: "bob"}, file.Rows[1].Spec)
	require.False(t, file.Rows[1].Inactive)
	require.Zero(t, file.Rows[1].GrantsPaidThrough)
	require.Equal(t, `The grants_paid_through "2026-13" must be a month written YYYY-MM, such as 2026-11, or empty.`, file.Rows[2].Err)
	require.Equal(t, `The status "asleep" must be active or inactive.`, file.Rows[3].Err)
	require.Contains(t, file.Rows[4].Err, `The key_expires_at "31.12.2026 00:00" must be an RFC 3339 time`)
}

func TestParseImportCSVFileErrors(t *testing.T) {
	t.Parallel()
	for in, msg := range map[string]string{
		"":                                       "The CSV file is empty; its first line must be the header: username,project,initial_credits",
		"\ufeff":                                 "empty",
		"\n\n":                                   "empty",
		"username,project,initial_credits\n":     "The CSV file has a header but no rows",
		"username,project,initial_credits\n,,\n": "no rows",
		"ann,p,1\nbob,p,2\n":                     `The first line must be the header: username,project,initial_credits (it reads "ann,p,1")`,
		"username,project\nann,p\n":              "The header lacks the column initial_credits; the first line must be the header",
		"username\nann\n":                        "The header lacks the columns project and initial_credits",
		"username,project,initial_credits,email,x\nann,,1,a,b\n": `The header has the unknown columns "email" and "x"; an import reads`,
		"username,project,initial_credits,Username\nann,,1,b\n":  "The column username is given twice",
		"username,project,initial_credits,awarded\nann,,1,2\n":   "The columns initial_credits and awarded both give the initial credits; keep one",
		"username,project,initial_credits\n\"ann,p,1\n":          "Line 2, column 10 cannot be read as CSV: a quote is not closed",
		"username,project,initial_credits\nann\"x,p,1\n":         "Line 2, column 4 cannot be read as CSV: a field that is not quoted contains a quote",
		"\xff\xfeu\x00s": "odd number of bytes",
		"username,project,initial_credits\n" + strings.Repeat("a,,9007199254\n", 0) +
			"a,,9007199254\nb,,1\n": "The initial_credits of this file add up to more than 9007199254.740991 credits",
	} {
		_, err := metering.ParseImportCSV([]byte(in))
		var inv *metering.InvalidError
		require.True(t, errors.As(err, &inv), "%q: %v", in, err)
		require.Contains(t, err.Error(), msg, "%q", in)
		require.Contains(t, []string{"body", "header"}, inv.Field)
	}
}

// FuzzParseImportCSV checks that the parser never panics and that every row
// it accepts satisfies the rules a created user must meet. `go test` runs
// the seeds; `go test -fuzz FuzzParseImportCSV ./metering` explores.
func FuzzParseImportCSV(f *testing.F) {
	for _, s := range []string{
		"username,project,initial_credits\nann,teachers,12.5\n",
		"\ufeffusername,project,initial_credits,purchased,monthly_grant,partner\r\nann,,1,2,3,yes\r\nbob,p,0,0,0,no\r\n",
		"project,initial_credits,username\n\" p \",\"1e3\",\" ann \"\n",
		"username,project,initial_credits\nann,,1\nann,,2\n",
		"username,project,initial_credits\nAnn,,1\n-x,,1\nb,,-1\nc,,1.0000001\nd,,9007199254.740992\n",
		"username,project,initial_credits\n\"a\"\"b\",,1\n",
		"username,project,initial_credits\n\"unterminated,,1\n",
		"username,project,initial_credits,bogus\na,,1,2\n",
		"username,project,initial_credits\na,,1,2\nb\n,,\n\n",
		"username,project,initial_credits,partner\na,,+0,TRUE\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := metering.ParseImportCSV(data)
		rows := file.Rows
		if err != nil {
			var inv *metering.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("file error is not an InvalidError: %v", err)
			}
			if len(rows) != 0 {
				t.Fatalf("rows returned with a file error")
			}
			return
		}
		if len(rows) == 0 {
			t.Fatalf("no rows and no error")
		}
		seen := map[string]bool{}
		prevLine := 1
		for _, r := range rows {
			if r.Line <= prevLine {
				t.Fatalf("line %d after line %d", r.Line, prevLine)
			}
			prevLine = r.Line
			if r.Err != "" {
				continue
			}
			s := r.Spec
			if !metering.ValidName(s.Username) {
				t.Fatalf("line %d: accepted username %q", r.Line, s.Username)
			}
			if s.Project != "" && !metering.ValidName(s.Project) {
				t.Fatalf("line %d: accepted project %q", r.Line, s.Project)
			}
			for _, c := range []metering.Credits{s.InitialCredits, s.Purchased, s.MonthlyGrant} {
				if c < 0 || c > metering.MaxCredits {
					t.Fatalf("line %d: accepted amount %d", r.Line, c)
				}
			}
			if s.KeyExpiresAt != nil && !strings.Contains(strings.ToLower(string(data)), "key_expires_at") {
				t.Fatalf("line %d: a key expiry came from nowhere", r.Line)
			}
			if seen[s.Username] {
				t.Fatalf("line %d: duplicate %q accepted", r.Line, s.Username)
			}
			seen[s.Username] = true
			if strings.TrimSpace(s.Username) != s.Username {
				t.Fatalf("line %d: untrimmed username", r.Line)
			}
		}
	})
}
