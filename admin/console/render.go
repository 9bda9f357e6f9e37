package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// pages holds one parsed template set per page: the layout, the shared
// partials (files starting with "_") and the page's own file, which
// defines "content".
type pages struct {
	byName map[string]*template.Template
}

// funcs are the few helpers templates need beyond the localizer.
var funcs = template.FuncMap{
	// query builds a URL's query string from pairs, skipping empty values:
	// {{query "project" .Project "sort" .Sort}}.
	"query": func(pairs ...string) template.URL {
		var b strings.Builder
		for i := 0; i+1 < len(pairs); i += 2 {
			if pairs[i+1] == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(urlQueryEscape(pairs[i]) + "=" + urlQueryEscape(pairs[i+1]))
		}
		return template.URL(b.String()) // each part is escaped above
	},
	// pathEscape escapes one path segment (a username in a link).
	"pathEscape": pathSegment,
	// userPage is the path of a user's page below the console's base.
	"userPage": userPagePath,
	"eq2":      func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
}

func parsePages() (*pages, error) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	var shared []string
	var own []string
	for _, f := range files {
		switch base := path.Base(f); {
		case base == "layout.html" || strings.HasPrefix(base, "_"):
			shared = append(shared, f)
		default:
			own = append(own, f)
		}
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, f := range own {
		name := strings.TrimSuffix(path.Base(f), ".html")
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, append(append([]string{}, shared...), f)...)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", f, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what every page's template gets: the localizer, the session's
// identity, the CSRF token for its forms, the status strip, and the
// page's own data as .Data.
type view struct {
	L        *localizer
	Title    string
	Base     string // the console's base path, for links
	Path     string // this page's URI, for the language switch
	Name     string // the signed-in token's name; "" when signed out
	Role     string
	CanWrite bool
	CSRF     string
	Status   *statusView
	Flash    string
	Data     any
}

// render writes the page tmpl with data. titleKey is a catalogue key.
// csrf overrides the session's token (the sign-in form has no session).
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, tmpl, titleKey string, data any, csrf ...string) {
	t := c.pages.byName[tmpl]
	if t == nil {
		c.log.Error("console: no such template", zap.String("template", tmpl))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	l := newLocalizer(c.language(r, s))
	v := view{L: l, Title: l.T(titleKey), Base: c.cfg.BasePath, Path: r.URL.RequestURI(), Data: data}
	if s != nil {
		v.Name, v.Role, v.CanWrite, v.CSRF = s.name, s.role, s.canWrite(), s.csrf
		v.Flash = c.sessions.takeFlash(s)
		v.Status = c.status.get(r)
	}
	if len(csrf) > 0 {
		v.CSRF = csrf[0]
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.log.Error("console: rendering a page", zap.String("template", tmpl), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorData is the error page's: a catalogue key for the heading and,
// when the API refused something, its sentence.
type errorData struct {
	Key     string
	Message string
}

// renderError renders the error page with a catalogue message.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, key string) {
	c.render(w, r, s, status, "error", "page.error", errorData{Key: key})
}

// renderAPIError renders what a page returned: an API refusal with the
// API's own sentence, anything else as an internal error (logged).
func (c *Console) renderAPIError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	if asAPIError(err, &ae) {
		c.render(w, r, s, ae.Status, "error", "page.error", errorData{Key: errorKey(ae), Message: ae.Message})
		return
	}
	c.log.Error("console: page failed", zap.String("path", r.URL.Path), zap.Error(err))
	c.renderError(w, r, s, http.StatusInternalServerError, "error.internal")
}

// apiErrorCodes are the API's error codes the catalogue has a heading for.
var apiErrorCodes = []string{"not_found", "conflict", "forbidden", "unavailable", "invalid_argument", "too_large",
	"reveal_disabled", "gone"}

// errorKey is the catalogue heading of an API error code.
func errorKey(ae *apiError) string {
	if slices.Contains(apiErrorCodes, ae.Code) {
		return "error." + ae.Code
	}
	return "error.internal"
}

// redirect answers a form with 303 See Other to a page of the console,
// after recording a flash message for it.
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, s *session, to, flash string) {
	if flash != "" {
		c.sessions.setFlash(s, flash)
	}
	http.Redirect(w, r, c.cfg.BasePath+to, http.StatusSeeOther)
}

// localizerFor is the request's localizer, for flash messages and the
// like that are written before a page is rendered.
func (c *Console) localizerFor(r *http.Request, s *session) *localizer {
	return newLocalizer(c.language(r, s))
}
