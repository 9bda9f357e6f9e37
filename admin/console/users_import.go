package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/adminclient"
)

func (c *Console) importPages() []page {
	return []page{
		{method: "GET", path: "/users/import", h: c.importForm},
		{method: "POST", path: "/users/import/preview", h: c.importPreview, write: true, upload: true},
		{method: "POST", path: "/users/import/confirm", h: c.importConfirm, write: true},
	}
}

// importAnswer is the API's answer to POST /users/import, dry run or not.
type importAnswer struct {
	DryRun         bool                     `json:"dry_run"`
	Rows           []importRow              `json:"rows"`
	Created        int                      `json:"created"`
	Totals         adminclient.ImportTotals `json:"totals"`
	Separator      string                   `json:"separator"`
	IgnoredColumns []string                 `json:"ignored_columns"`
}

// importRow is one line of the file: what it writes when valid, the
// API's sentence when not, and its key after a real import.
type importRow struct {
	Line              int         `json:"line"`
	Username          string      `json:"username"`
	UsernameInFile    string      `json:"username_in_file"`
	Status            string      `json:"status"`
	Error             string      `json:"error"`
	APIKey            string      `json:"api_key"`
	Project           *string     `json:"project"`
	InitialCredits    json.Number `json:"initial_credits"`
	Purchased         json.Number `json:"purchased"`
	MonthlyGrant      json.Number `json:"monthly_grant"`
	Partner           bool        `json:"partner"`
	UserStatus        string      `json:"user_status"`
	KeyExpiresAt      *string     `json:"key_expires_at"`
	GrantsPaidThrough *string     `json:"grants_paid_through"`
}

// Bad reports whether the API refused the row.
func (r importRow) Bad() bool { return r.Status != "ok" }

// Writes reports whether a valid row writes the amount v (not 0).
func (importRow) Writes(v json.Number) bool {
	m, ok := parseMicro(v.String())
	return ok && m != 0
}

// PaidThrough is the month through which the row's purchased credits
// already hold the monthly grants; "" when none is given.
func (r importRow) PaidThrough() string {
	if r.GrantsPaidThrough == nil {
		return ""
	}
	return *r.GrantsPaidThrough
}

// Errors counts the rows the API refused.
func (a *importAnswer) Errors() int {
	n := 0
	for _, r := range a.Rows {
		if r.Bad() {
			n++
		}
	}
	return n
}

// IgnoredList is the file's columns the import does not read, for a hint.
func (a *importAnswer) IgnoredList() string { return strings.Join(a.IgnoredColumns, ", ") }

type importFormData struct {
	MaxBytes int64
	Form     *formState
}

// importPreviewData is the preview page: the dry run's answer and, when
// every row is valid, the id of the kept upload for the confirm form.
type importPreviewData struct {
	Answer *importAnswer
	Upload string
	Form   *formState
}

// importResultData is the page after a real import: each new user's key,
// and the same as a CSV file in a data: URL, so that the keys can be
// saved without asking the server again.
type importResultData struct {
	Answer  *importAnswer
	KeysCSV template.URL
}

func (c *Console) importForm(w http.ResponseWriter, r *http.Request, s *session) error {
	c.renderImportForm(w, r, s, http.StatusOK, nil)
	return nil
}

func (c *Console) renderImportForm(w http.ResponseWriter, r *http.Request, s *session, status int, form *formState) {
	c.render(w, r, s, status, "users_import", "page.users_import", importFormData{MaxBytes: c.cfg.MaxUploadBytes, Form: form})
}

// importFailed shows the upload form again with a sentence: the API's
// for a refused file, the catalogue's otherwise.
func (c *Console) importFailed(w http.ResponseWriter, r *http.Request, s *session, status int, message string) error {
	c.renderImportForm(w, r, s, status, &formState{Form: "import", Message: message})
	return nil
}

// importPreview: the upload form → POST /users/import?dry_run=true. The
// preview shows every row; when none is bad, the file is kept in the
// session (replacing any earlier one) for the confirm form.
func (c *Console) importPreview(w http.ResponseWriter, r *http.Request, s *session) error {
	c.sessions.dropPendingImport(s)
	l := c.localizerFor(r, s)
	file, _, err := r.FormFile("file")
	if err != nil {
		return c.importFailed(w, r, s, http.StatusBadRequest, l.T("import.no_file"))
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, c.cfg.MaxUploadBytes+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > c.cfg.MaxUploadBytes {
		return c.importFailed(w, r, s, http.StatusRequestEntityTooLarge, l.T("import.too_large", l.Int(c.cfg.MaxUploadBytes)))
	}
	answer, err := c.callImport(r, s, data, true)
	if err != nil {
		return c.importRefused(w, r, s, err)
	}
	d := importPreviewData{Answer: answer}
	if answer.Errors() == 0 && len(answer.Rows) > 0 {
		d.Upload = randomToken()
		c.sessions.setPendingImport(s, &pendingUpload{id: d.Upload, data: data})
	}
	c.render(w, r, s, http.StatusOK, "users_import_preview", "page.users_import_preview", d)
	return nil
}

// importConfirm: the confirm form → POST /users/import with the kept
// file. Success shows the keys in this answer; a file that has become
// invalid since its preview (a username taken meanwhile) shows the
// preview again with the rows the API refused.
func (c *Console) importConfirm(w http.ResponseWriter, r *http.Request, s *session) error {
	upload := c.sessions.takePendingImport(s, r.PostFormValue("upload"))
	if upload == nil {
		return c.importFailed(w, r, s, http.StatusConflict, c.localizerFor(r, s).T("import.expired"))
	}
	answer, err := c.callImport(r, s, upload.data, false)
	if err != nil {
		var rejected *importRejected
		if errors.As(err, &rejected) {
			c.render(w, r, s, http.StatusBadRequest, "users_import_preview", "page.users_import_preview",
				importPreviewData{Answer: rejected.answer, Form: &formState{Form: "import", Message: rejected.err.Message}})
			return nil
		}
		return c.importRefused(w, r, s, err)
	}
	keys, err := importKeysCSV(answer.Rows)
	if err != nil {
		return err
	}
	c.render(w, r, s, http.StatusOK, "users_import_result", "page.users_import_result",
		importResultData{Answer: answer, KeysCSV: keys})
	return nil
}

// importRefused shows an API refusal of the whole file (its header, its
// size, a CSV syntax error) on the upload form; other errors go to the
// error page.
func (c *Console) importRefused(w http.ResponseWriter, r *http.Request, s *session, err error) error {
	var ae *apiError
	if asAPIError(err, &ae) && (ae.Status < 500 || ae.Status == http.StatusServiceUnavailable) {
		return c.importFailed(w, r, s, ae.Status, ae.Message)
	}
	return err
}

// importRejected is a real import the API refused because of bad rows:
// its sentence and the rows, to show like a preview.
type importRejected struct {
	err    *apiError
	answer *importAnswer
}

func (e *importRejected) Error() string { return e.err.Error() }

// callImport sends a CSV file to POST /users/import. Unlike call, it
// reads the rows of a 400 answer too: a real import of a file with bad
// rows is refused with them (*importRejected).
func (c *Console) callImport(r *http.Request, s *session, data []byte, dryRun bool) (*importAnswer, error) {
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	req, err := c.apiRequest(r.Context(), r, s.secret, http.MethodPost, "/users/import", q, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/csv")
	rec := &bufferedResponse{header: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	answer := &importAnswer{}
	if rec.status >= 300 {
		ae := decodeAPIError(rec.status, rec.body.Bytes())
		if rec.status == http.StatusBadRequest && json.Unmarshal(rec.body.Bytes(), answer) == nil && len(answer.Rows) > 0 {
			return nil, &importRejected{err: ae, answer: answer}
		}
		return nil, ae
	}
	if err := json.Unmarshal(rec.body.Bytes(), answer); err != nil {
		return nil, fmt.Errorf("console: decoding the answer of POST /users/import: %w", err)
	}
	return answer, nil
}

// importKeysCSV is the new keys as a CSV file (username,project,api_key)
// in a data: URL, its cells made spreadsheet-safe as every CSV the
// project writes.
func importKeysCSV(rows []importRow) (template.URL, error) {
	var buf bytes.Buffer
	w := admin.NewCSVWriter(&buf)
	w.Write([]string{"username", "project", "api_key"})
	for _, row := range rows {
		project := ""
		if row.Project != nil {
			project = *row.Project
		}
		w.Write([]string{row.Username, project, row.APIKey})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return "", err
	}
	// Built here from base64 text only, so it is a safe URL.
	return template.URL("data:text/csv;charset=utf-8;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}
