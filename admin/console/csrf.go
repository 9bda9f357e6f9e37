package console

import (
	"crypto/subtle"
	"net/http"
)

// csrfField is the form field every POST carries.
const csrfField = "csrf"

// publicCSRFCookie carries the CSRF token of a form shown without a
// session (sign-in, claiming an invite): double submit, the form's field
// must equal the cookie, which is scoped to the form's own path.
const publicCSRFCookie = "tollgate_form_csrf"

// publicFormToken sets a new CSRF cookie for the page's path and returns
// the token for its form.
func publicFormToken(w http.ResponseWriter, r *http.Request) string {
	token := randomToken()
	http.SetCookie(w, &http.Cookie{Name: publicCSRFCookie, Value: token, Path: r.URL.Path,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return token
}

// clearPublicFormToken removes the cookie once its form has been used.
func clearPublicFormToken(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: publicCSRFCookie, Value: "", Path: r.URL.Path, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// checkCSRF refuses a POST whose csrf field is not the session's token
// (or, on the sign-in form, the sign-in cookie's). It answers 403 itself.
// SameSite=Strict cookies already keep other sites' forms out; the token
// also covers browsers that ignore SameSite.
func (c *Console) checkCSRF(w http.ResponseWriter, r *http.Request, s *session) bool {
	got := r.PostFormValue(csrfField) // parses the form, bounded by the limit wrap sets
	want := ""
	if s != nil {
		want = s.csrf
	} else if ck, err := r.Cookie(publicCSRFCookie); err == nil {
		want = ck.Value
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		c.renderError(w, r, s, http.StatusForbidden, "error.csrf")
		return false
	}
	return true
}
