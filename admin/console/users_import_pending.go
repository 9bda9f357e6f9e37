package console

import "crypto/subtle"

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
