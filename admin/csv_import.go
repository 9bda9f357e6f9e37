package admin

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/metering"
)

// importRowJSON is one row of the POST /users/import answer. A valid row
// ("ok") also shows what it writes (importValuesJSON); a row in error shows
// the username as the file has it, and the error.
type importRowJSON struct {
	Line     int    `json:"line"`
	Username string `json:"username"`
	// UsernameInFile is the username as written in the file, when it is
	// stored otherwise (folded to lower case).
	UsernameInFile string `json:"username_in_file,omitempty"`
	Status         string `json:"status"` // "ok" or "error"
	Error          string `json:"error,omitempty"`
	APIKey         string `json:"api_key,omitempty"` // only on a real, successful import
	*importValuesJSON
}

// importValuesJSON is what a valid row writes.
type importValuesJSON struct {
	Project        *string          `json:"project"` // null: no project
	InitialCredits metering.Credits `json:"initial_credits"`
	Purchased      metering.Credits `json:"purchased"`
	MonthlyGrant   metering.Credits `json:"monthly_grant"`
	Partner        bool             `json:"partner"`
	UserStatus     string           `json:"user_status"` // "active" or "inactive"
	KeyExpiresAt   *time.Time       `json:"key_expires_at"`
	// GrantsPaidThrough (YYYY-MM) is the month through which purchased
	// includes the monthly grants; null: this month's grant is still due.
	GrantsPaidThrough *string `json:"grants_paid_through"`
}

// importJSON is the answer of POST /users/import. A rejected import (400)
// carries the error object as well as the rows, so a client that only
// reads errors still gets a message.
type importJSON struct {
	Error   *apiError       `json:"error,omitempty"`
	DryRun  bool            `json:"dry_run"`
	Rows    []importRowJSON `json:"rows"`
	Created int             `json:"created"`
	// Totals add up the valid rows: what the import writes (or, for a dry
	// run or a rejected file, would write once every row is valid).
	Totals importTotalsJSON `json:"totals"`
	// Separator is the field separator read from the header.
	Separator string `json:"separator"`
	// IgnoredColumns are the header's columns an import does not read
	// (the state columns of a users export).
	IgnoredColumns []string `json:"ignored_columns"`
}

// importUsers: POST /users/import (text/csv; ?dry_run=true) →
// 200 {"rows":[...],"created":N}; 400 with the rows when any row is bad
// (nothing created); 413 when the body is over MaxImportBytes.
func (a *api) importUsers(w http.ResponseWriter, r *http.Request) error {
	dryRun := false
	if s := r.URL.Query().Get("dry_run"); s != "" || r.URL.Query().Has("dry_run") {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return invalidArg("dry_run", "must be true or false")
		}
		dryRun = v
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "text/csv" && mt != "application/csv" && mt != "text/plain") {
			return invalidArg("Content-Type", fmt.Sprintf("must be text/csv, got %q", ct))
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxImportBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: "The CSV file is larger than " + metering.Plural(a.cfg.MaxImportBytes, "byte", "bytes") + "; split it into smaller imports"}
	}
	if err != nil {
		return invalidArg("body", "The request body could not be read ("+err.Error()+")")
	}
	file, err := metering.ParseImportCSV(data)
	if err != nil {
		return err
	}
	res, err := a.engine.ImportUsers(r.Context(), actor(r), file.Rows, dryRun)
	if err != nil {
		return err
	}
	out := importJSON{DryRun: dryRun, Rows: make([]importRowJSON, len(res.Rows)), Created: res.Created,
		Separator: file.Separator, IgnoredColumns: append([]string{}, file.Ignored...)}
	bad := 0
	for i, row := range res.Rows {
		out.Rows[i] = importRowJSON{Line: row.Line, Username: row.Username, Status: "ok", Error: row.Err, APIKey: row.APIKey}
		if row.Err != "" {
			out.Rows[i].Status = "error"
			bad++
			continue
		}
		out.Rows[i].UsernameInFile = file.Rows[i].GivenUsername
		out.Rows[i].importValuesJSON = importValues(&file.Rows[i])
	}
	out.Totals = importTotals(file.Rows, res.Rows)
	status := http.StatusOK
	if bad > 0 && !dryRun {
		status = http.StatusBadRequest
		out.Error = invalidArg("body", "Nothing was imported: "+metering.RowsInvalid(bad, len(res.Rows)))
	}
	writeJSON(w, status, out)
	return nil
}
