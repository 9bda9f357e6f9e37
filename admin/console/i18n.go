package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// languages the console speaks; the first is the fallback.
var languages = []string{"en", "de"}

// langCookieName remembers a choice made before signing in (or on the
// claim page, which has no session).
const langCookieName = "tollgate_lang"

// message is one catalogue entry in every language. Strings with
// arguments use fmt verbs.
type message struct{ en, de string }

// localizer renders text, numbers and dates in one language. Templates
// reach it as .L: {{.L.T "users.title"}}, {{.L.Credits .User.Awarded}}.
type localizer struct {
	Lang string
	loc  *time.Location
}

func newLocalizer(lang string) *localizer { return &localizer{Lang: lang, loc: time.UTC} }

// T is the catalogue text of key, formatted with args when there are
// any. A key missing from the catalogue shows itself, so that a test
// (TestCatalogueCoversTemplates) and a glance at a page both catch it.
func (l *localizer) T(key string, args ...any) string {
	m, ok := catalog[key]
	if !ok {
		return key
	}
	s := m.en
	if l.Lang == "de" && m.de != "" {
		s = m.de
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// separators: thousands and decimal.
func (l *localizer) separators() (string, string) {
	if l.Lang == "de" {
		return ".", ","
	}
	return ",", "."
}

// Credits formats an exact decimal as the API writes it ("1234.5",
// json.Number or string) with the language's separators: 1,234.5 or
// 1.234,5. No float is involved, so nothing is rounded.
func (l *localizer) Credits(v any) string {
	s := fmt.Sprint(v)
	switch n := v.(type) {
	case json.Number:
		s = n.String()
	case *json.Number:
		if n == nil {
			return "–"
		}
		s = n.String()
	case nil:
		return "–"
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if _, err := strconv.ParseUint(whole, 10, 64); err != nil {
		return s // not a plain decimal: show as it came
	}
	th, dec := l.separators()
	var b strings.Builder
	if neg {
		b.WriteString("−")
	}
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(th)
		}
		b.WriteRune(d)
	}
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		b.WriteString(dec + frac)
	}
	return b.String()
}

// Int formats a whole number with thousands separators.
func (l *localizer) Int(n any) string { return l.Credits(fmt.Sprint(n)) }

// Time formats an RFC 3339 time (string, *string or time.Time) as a date
// and time in UTC, in the language's order; "–" for none.
func (l *localizer) Time(v any) string {
	t, ok := asTime(v)
	if !ok {
		return "–"
	}
	t = t.In(l.loc)
	if l.Lang == "de" {
		return t.Format("02.01.2006 15:04") + " UTC"
	}
	return t.Format("2 Jan 2006 15:04") + " UTC"
}

// Date formats a day ("2026-11-30" or a time) as 30.11.2026 or 30 Nov 2026.
func (l *localizer) Date(v any) string {
	t, ok := asTime(v)
	if !ok {
		if s, isStr := v.(string); isStr {
			if d, err := time.Parse(time.DateOnly, s); err == nil {
				t, ok = d, true
			}
		}
		if !ok {
			return "–"
		}
	}
	if l.Lang == "de" {
		return t.Format("02.01.2006")
	}
	return t.Format("2 Jan 2006")
}

func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t != nil {
			return *t, true
		}
	case string:
		p, err := time.Parse(time.RFC3339Nano, t)
		return p, err == nil
	case *string:
		if t != nil {
			return asTime(*t)
		}
	}
	return time.Time{}, false
}

// language picks the page's language: the session's choice, the cookie's,
// then the browser's Accept-Language, then English.
func (c *Console) language(r *http.Request, s *session) string {
	if s != nil && s.lang != "" {
		return s.lang
	}
	if l := c.langCookie(r); l != "" {
		return l
	}
	return negotiate(r.Header.Get("Accept-Language"))
}

func (c *Console) langCookie(r *http.Request) string {
	if ck, err := r.Cookie(langCookieName); err == nil && isLanguage(ck.Value) {
		return ck.Value
	}
	return ""
}

func isLanguage(l string) bool {
	for _, x := range languages {
		if l == x {
			return true
		}
	}
	return false
}

// negotiate picks the best supported language of an Accept-Language
// header ("de-DE,de;q=0.9,en;q=0.8"); English when none is supported.
func negotiate(header string) string {
	type choice struct {
		lang string
		q    float64 // a preference weight, not money
		pos  int
	}
	var choices []choice
	for i, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if isLanguage(base) && q > 0 {
			choices = append(choices, choice{base, q, i})
		}
	}
	sort.SliceStable(choices, func(i, j int) bool { return choices[i].q > choices[j].q })
	if len(choices) > 0 {
		return choices[0].lang
	}
	return languages[0]
}

// switchLanguage: GET /lang/{code}?back=/admin/users remembers the choice
// (in the session and a cookie) and goes back to the page.
func (c *Console) switchLanguage(w http.ResponseWriter, r *http.Request, _ *session) error {
	code := r.PathValue("code")
	if !isLanguage(code) {
		c.renderError(w, r, nil, http.StatusNotFound, "error.not_found")
		return nil
	}
	if s := c.sessions.get(r); s != nil {
		c.sessions.setLang(s, code)
	}
	http.SetCookie(w, &http.Cookie{Name: langCookieName, Value: code, Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	back := r.URL.Query().Get("back")
	if _, ok := c.localPath(back); !ok {
		back = c.cfg.BasePath + "/users"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}
