package console

import (
	"errors"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
)

func (c *Console) signInPages() []page {
	return []page{
		{method: "GET", path: "/login", h: c.signInForm, public: true},
		{method: "POST", path: "/login", h: c.signIn, public: true},
		{method: "POST", path: "/logout", h: c.signOut},
		{method: "GET", path: "/lang/{code}", h: c.switchLanguage, public: true},
	}
}

type signInData struct {
	Next    string
	Expired bool
	Error   string // catalogue key
	Wait    int64  // seconds, for error.signin_wait
}

// signInForm shows the sign-in form. Its CSRF token lives in a cookie
// until there is a session.
func (c *Console) signInForm(w http.ResponseWriter, r *http.Request, _ *session) error {
	if c.sessions.get(r) != nil {
		http.Redirect(w, r, c.safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	d := signInData{Next: r.URL.Query().Get("next"), Expired: r.URL.Query().Has("expired")}
	c.renderSignIn(w, r, http.StatusOK, d)
	return nil
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	c.render(w, r, nil, status, "login", "page.signin", d, publicFormToken(w, r))
}

// signIn checks the token by asking the API who it is, then starts a
// session. Failures are counted per client address (throttle.go).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request, _ *session) error {
	addr := c.cfg.ClientAddress(r)
	next := r.PostFormValue("next")
	if wait := c.throttle.wait(addr); wait > 0 {
		c.renderSignIn(w, r, http.StatusTooManyRequests,
			signInData{Next: next, Error: "error.signin_wait", Wait: int64(math.Ceil(wait.Seconds()))})
		return nil
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	var who struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	err := c.callAs(r, secret, http.MethodGet, "/whoami", nil, nil, &who)
	if err != nil {
		var ae *apiError
		if asAPIError(err, &ae) && ae.Status == http.StatusUnauthorized || secret == "" {
			c.throttle.failed(addr)
			c.renderSignIn(w, r, http.StatusUnauthorized, signInData{Next: next, Error: "error.signin_failed"})
			return nil
		}
		return err
	}
	c.throttle.succeeded(addr)
	c.sessions.create(w, r, c.cfg.BasePath, secret, who.Name, who.Role, c.langCookie(r))
	clearPublicFormToken(w, r)
	http.Redirect(w, r, c.safeNext(next), http.StatusSeeOther)
	return nil
}

// signOut ends the session.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, _ *session) error {
	c.sessions.end(w, r, c.cfg.BasePath)
	http.Redirect(w, r, c.cfg.BasePath+"/login", http.StatusSeeOther)
	return nil
}

// safeNext is where to go after sign-in: a console page the visitor
// asked for (not the sign-in page itself), never another site.
func (c *Console) safeNext(next string) string {
	if p, ok := c.localPath(next); ok && p != c.cfg.BasePath+"/login" && strings.HasPrefix(p, c.cfg.BasePath+"/") {
		return next
	}
	return c.cfg.BasePath + "/users"
}

// localPath reports whether target is a path of this console or its
// claim pages (and returns the path without its query), so that a
// redirect to it cannot leave the site (an open redirect).
func (c *Console) localPath(target string) (string, bool) {
	u, err := url.Parse(target)
	if target == "" || err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" ||
		strings.HasPrefix(target, "//") || strings.Contains(target, "\\") || u.RawPath != "" && strings.Contains(u.RawPath, "%2F") {
		return "", false
	}
	if !strings.HasPrefix(u.Path, c.cfg.BasePath+"/") && !strings.HasPrefix(u.Path, c.cfg.ClaimPath+"/") {
		return "", false
	}
	return u.Path, true
}

// remoteHost is the host part of r.RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// asAPIError is errors.As for *apiError.
func asAPIError(err error, target **apiError) bool { return errors.As(err, target) }

func urlPathEscape(s string) string { return url.PathEscape(s) }
