package metering_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func TestParseImportCSV(t *testing.T) {
	t.Parallel()
	in := "\ufeff Username , initial_credits,project,Partner,monthly_grant,purchased\r\n" +
		"ann,12.5,teachers,true,10,0.000001\r\n" +
		"\r\n" +
		`"bob","0",,no,,` + "\r\n" +
		" carl ,  ,\" teachers \",,,\r\n" +
		",,,,,\r\n" + // a spreadsheet's blank line
		"\"dan\nx\",1,,,,\r\n" + // a quoted newline: the row starts on line 7
		"Eve,1,,,,\n" +
		"fay,1.1234567,,,,\n" +
		"gus,-1,,,,\n" +
		"hal,1e3,,,,\n" +
		"ivy,9007199254.740992,,,,\n" +
		"ann,1,,,,\n" +
		"jo,1,,maybe,,\n" +
		"kim,1,Bad Project,,,\n" +
		"lea,1\n" +
		"mo,,,,x,\n"
	rows, err := metering.ParseImportCSV([]byte(in))
	require.NoError(t, err)
	type want struct {
		line int
		user string
		err  string // substring; "" for a valid row
	}
	wants := []want{
		{2, "ann", ""},
		{4, "bob", ""},
		{5, "carl", ""},
		{7, "dan\nx", "not valid"},
		{9, "Eve", "not valid"},
		{10, "fay", "initial_credits \"1.1234567\" is not an amount"},
		{11, "gus", "must not be negative"},
		{12, "hal", ""},
		{13, "ivy", "out of range"},
		{14, "ann", "duplicate username \"ann\": also on line 2"},
		{15, "jo", "partner \"maybe\""},
		{16, "kim", "project \"Bad Project\""},
		{17, "lea", "has 2 fields, the header has 6"},
		{18, "mo", "monthly_grant"},
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
		}
	}
	ann := rows[0].Spec
	require.Equal(t, metering.UserSpec{Username: "ann", Project: "teachers", InitialCredits: 12_500_000,
		Purchased: 1, MonthlyGrant: 10 * metering.Micro, Partner: true}, ann)
	require.Equal(t, metering.UserSpec{Username: "bob"}, rows[1].Spec)
	require.Equal(t, "teachers", rows[2].Spec.Project, "spaces inside quotes are trimmed too")
	require.Equal(t, 1000*metering.Micro, rows[7].Spec.InitialCredits)
}

func TestParseImportCSVFileErrors(t *testing.T) {
	t.Parallel()
	for in, msg := range map[string]string{
		"":                                       "empty",
		"\ufeff":                                 "empty",
		"username,project,initial_credits\n":     "no rows",
		"username,project,initial_credits\n,,\n": "no rows",
		"username,project\nann,p\n":              "missing required column(s): initial_credits",
		"username,project,initial_credits,email,x\nann,,1,a,b\n": `unknown column(s) "email", "x"`,
		"username,project,initial_credits,Username\nann,,1,b\n":  "given twice: username",
		"username,project,initial_credits\n\"ann,p,1\n":          "line 2",
		"username,project,initial_credits\nann\"x,p,1\n":         "line 2",
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
		rows, err := metering.ParseImportCSV(data)
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
			if s.KeyExpiresAt != nil {
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
