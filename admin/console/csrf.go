package console

import (
	"crypto/subtle"
	"net/http"
)

// csrfField is the form field every POST carries.
const csrfField = "csrf"

// signInCSRFCookie carries the sign-in form's CSRF token before there is
// a session (double submit: the form's field must equal the cookie).
const signInCSRFCookie = "tollgate_signin_csrf"

// checkCSRF refuses a POST whose csrf field is not the session's token
// (or, on the sign-in form, the sign-in cookie's). It answers 403 itself.
// SameSite=Strict cookies already keep other sites' forms out; the token
// also covers browsers that ignore SameSite.
func (c *Console) checkCSRF(w http.ResponseWriter, r *http.Request, s *session) bool {
	got := r.PostFormValue(csrfField) // parses the form, bounded by the body limit set in wrap's callers
	want := ""
	if s != nil {
		want = s.csrf
	} else if ck, err := r.Cookie(signInCSRFCookie); err == nil {
		want = ck.Value
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		c.renderError(w, r, s, http.StatusForbidden, "error.csrf")
		return false
	}
	return true
}
