package admin

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/tollgate/tollgate/metering"
)

// importRowJSON is one row of the POST /users/import answer.
type importRowJSON struct {
	Line     int    `json:"line"`
	Username string `json:"username"`
	Status   string `json:"status"` // "ok" or "error"
	Error    string `json:"error,omitempty"`
	APIKey   string `json:"api_key,omitempty"` // only on a real, successful import
}

// importJSON is the answer of POST /users/import. A rejected import (400)
// carries the error object as well as the rows, so a client that only
// reads errors still gets a message.
type importJSON struct {
	Error   *apiError       `json:"error,omitempty"`
	Rows    []importRowJSON `json:"rows"`
	Created int             `json:"created"`
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
			Message: fmt.Sprintf("the CSV file is larger than %d bytes; split it into smaller imports", a.cfg.MaxImportBytes)}
	}
	if err != nil {
		return invalidArg("body", "could not read the request body: "+err.Error())
	}
	rows, err := metering.ParseImportCSV(data)
	if err != nil {
		return err
	}
	res, err := a.engine.ImportUsers(r.Context(), actor(r), rows, dryRun)
	if err != nil {
		return err
	}
	out := importJSON{Rows: make([]importRowJSON, len(res.Rows)), Created: res.Created}
	bad := 0
	for i, row := range res.Rows {
		out.Rows[i] = importRowJSON{Line: row.Line, Username: row.Username, Status: "ok", Error: row.Err, APIKey: row.APIKey}
		if row.Err != "" {
			out.Rows[i].Status = "error"
			bad++
		}
	}
	status := http.StatusOK
	if bad > 0 && !dryRun {
		status = http.StatusBadRequest
		out.Error = invalidArg("body", fmt.Sprintf("%d of %d rows are invalid; nothing was imported", bad, len(res.Rows)))
	}
	writeJSON(w, status, out)
	return nil
}
