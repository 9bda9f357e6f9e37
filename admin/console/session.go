package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// sessionCookie holds a signed-in browser's session id. It is HttpOnly
// and SameSite=Strict, Secure under TLS, scoped to the console's path.
const sessionCookie = "tollgate_session"

// maxSessions bounds the store: past it, signing in first drops expired
// sessions, then the oldest one.
const maxSessions = 10000

// session is one signed-in browser. The token's secret stays in server
// memory, to call the API with; the browser holds only a random id.
type session struct {
	secret   string // the admin or viewer token signed in with
	name     string // the token's name: the actor of every write
	role     string // "admin" or "viewer"
	csrf     string // the CSRF token every form of this session carries
	lang     string // "" until chosen: the browser's Accept-Language decides
	created  time.Time
	lastSeen time.Time
	flash    string // shown once on the next page
	// pendingImport is the CSV file of an import preview awaiting its
	// confirmation (upload.go); nil when there is none.
	pendingImport *pendingUpload
}

func (s *session) canWrite() bool { return s != nil && s.role == "admin" }

// sessionStore keeps sessions in memory, keyed by the SHA-256 of their id
// so that a lookup's timing says nothing about the ids it holds. Sessions
// live in one gateway process: behind several gateways, route the console
// to one of them (or make the load balancer's sessions sticky), and sign
// in again after a restart or a configuration reload.
type sessionStore struct {
	mu     sync.Mutex
	byHash map[[sha256.Size]byte]*session
	idle   time.Duration
	maxAge time.Duration
	now    func() time.Time
}

func newSessionStore(idle, maxAge time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{byHash: map[[sha256.Size]byte]*session{}, idle: idle, maxAge: maxAge, now: now}
}

// randomToken is 32 random bytes, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for a verified token and sets its cookie. A new
// id on every sign-in: an id planted before sign-in is worth nothing.
func (st *sessionStore) create(w http.ResponseWriter, r *http.Request, cookiePath, secret, name, role, lang string) *session {
	id := randomToken()
	now := st.now()
	s := &session{secret: secret, name: name, role: role, csrf: randomToken(), lang: lang, created: now, lastSeen: now}
	st.mu.Lock()
	if len(st.byHash) >= maxSessions {
		st.evictLocked(now)
	}
	st.byHash[sha256.Sum256([]byte(id))] = s
	st.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: cookiePath, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return s
}

// evictLocked drops expired sessions, and the oldest one if none was.
func (st *sessionStore) evictLocked(now time.Time) {
	var oldestKey [sha256.Size]byte
	var oldest *session
	for k, s := range st.byHash {
		if st.expired(s, now) {
			delete(st.byHash, k)
			continue
		}
		if oldest == nil || s.created.Before(oldest.created) {
			oldest, oldestKey = s, k
		}
	}
	if len(st.byHash) >= maxSessions && oldest != nil {
		delete(st.byHash, oldestKey)
	}
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.maxAge
}

// get returns the request's live session and marks it used, or nil. An
// expired session is removed.
func (st *sessionStore) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(c.Value))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byHash[key]
	if s == nil {
		return nil
	}
	if st.expired(s, now) {
		delete(st.byHash, key)
		return nil
	}
	s.lastSeen = now
	return s
}

// end removes the request's session and clears its cookie.
func (st *sessionStore) end(w http.ResponseWriter, r *http.Request, cookiePath string) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		st.mu.Lock()
		delete(st.byHash, sha256.Sum256([]byte(c.Value)))
		st.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: cookiePath, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// setLang records the session's language choice.
func (st *sessionStore) setLang(s *session, lang string) {
	st.mu.Lock()
	s.lang = lang
	st.mu.Unlock()
}

// setFlash keeps a one-line message for the session's next page (after
// a form's redirect).
func (st *sessionStore) setFlash(s *session, msg string) {
	st.mu.Lock()
	s.flash = msg
	st.mu.Unlock()
}

// takeFlash returns and clears the session's flash message.
func (st *sessionStore) takeFlash(s *session) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}
