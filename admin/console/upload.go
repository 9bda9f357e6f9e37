package console

import (
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
)

// readForm parses a POST's form before anything reads it, within bounds:
// a plain form may be maxFormBytes, a multipart one (a CSV upload)
// MaxUploadBytes plus room for its other fields. Without this the CSRF
// check's PostFormValue would read a body of any size. It answers 413
// itself when the body is too large and reports whether to go on; other
// parse failures are left for the CSRF check to refuse.
func (c *Console) readForm(w http.ResponseWriter, r *http.Request, s *session) bool {
	limit := int64(maxFormBytes)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	multipart := mt == "multipart/form-data"
	if multipart {
		limit += c.cfg.MaxUploadBytes
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	var err error
	if multipart {
		// Parts beyond maxFormBytes go to temporary files, which the
		// server removes when the request ends.
		err = r.ParseMultipartForm(maxFormBytes)
	} else {
		err = r.ParseForm()
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		c.renderError(w, r, s, http.StatusRequestEntityTooLarge, "error.too_large")
		return false
	}
	return true
}

// pendingUpload is a CSV file whose import preview an admin is looking
// at, kept in server memory until they confirm it, so that the file is
// not uploaded twice. It holds the file only, never a key.
type pendingUpload struct {
	id   string // random; the confirm form posts it back as "upload"
	data []byte
}

// setPendingImport keeps upload as the session's one pending import,
// replacing any earlier one.
func (st *sessionStore) setPendingImport(s *session, upload *pendingUpload) {
	st.mu.Lock()
	s.pendingImport = upload
	st.mu.Unlock()
}

// takePendingImport returns the session's pending import if its id is
// id, and forgets it: an upload is confirmed once. A wrong id leaves the
// pending import alone (it may be another tab's).
func (st *sessionStore) takePendingImport(s *session, id string) *pendingUpload {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := s.pendingImport
	if p == nil || id == "" || subtle.ConstantTimeCompare([]byte(p.id), []byte(id)) != 1 {
		return nil
	}
	s.pendingImport = nil
	return p
}

// dropPendingImport forgets the session's pending import.
func (st *sessionStore) dropPendingImport(s *session) { st.setPendingImport(s, nil) }
