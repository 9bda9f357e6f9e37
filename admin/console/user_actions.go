package console

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The user page's money and status forms. Each posts to its own route and
// calls one API route; the API validates, writes the audit entry (actor:
// the signed-in token's name) and phrases any refusal.

// userCredits: the credits form → POST /users/{name}/credits.
func (c *Console) userCredits(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if f := userFormNotText(r, "delta", "bucket", "note"); f != "" {
		return c.renderUser(w, r, s, name, http.StatusBadRequest, c.userTextRefusal(r, s, "credits", f))
	}
	body := map[string]any{"bucket": r.PostFormValue("bucket"), "note": r.PostFormValue("note")}
	credits(body, "delta", r.PostFormValue("delta"))
	var out userDetail
	if err := c.call(r, s, http.MethodPost, userDetailPath(name)+"/credits", nil, body, &out); err != nil {
		return c.userRefused(w, r, s, name, "credits", err)
	}
	l := c.localizerFor(r, s)
	c.redirect(w, r, s, userPagePath(name), l.T("user.credits_done", out.Username, l.Credits(out.EffectiveCredits)))
	return nil
}

// userTransfer: the transfer form → POST /transfers from this user.
func (c *Console) userTransfer(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if f := userFormNotText(r, "to", "amount", "note"); f != "" {
		return c.renderUser(w, r, s, name, http.StatusBadRequest, c.userTextRefusal(r, s, "transfer", f))
	}
	body := map[string]any{"from": name, "to": r.PostFormValue("to"), "note": r.PostFormValue("note")}
	credits(body, "amount", r.PostFormValue("amount"))
	var out struct {
		From userDetail `json:"from"`
		To   userDetail `json:"to"`
	}
	if err := c.call(r, s, http.MethodPost, "/transfers", nil, body, &out); err != nil {
		return c.userRefused(w, r, s, name, "transfer", err)
	}
	l := c.localizerFor(r, s)
	c.redirect(w, r, s, userPagePath(name), l.T("user.transfer_done", out.To.Username))
	return nil
}

// userSetActive: the deactivate and activate forms. Deactivating stops
// the key at once; activating lets the same key work again.
func (c *Console) userSetActive(active bool) func(w http.ResponseWriter, r *http.Request, s *session) error {
	action, form, done := "/deactivate", "deactivate", "user.deactivated"
	if active {
		action, form, done = "/activate", "activate", "user.activated"
	}
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		name := r.PathValue("name")
		var out userDetail
		if err := c.call(r, s, http.MethodPost, userDetailPath(name)+action, nil, nil, &out); err != nil {
			return c.userRefused(w, r, s, name, form, err)
		}
		c.redirect(w, r, s, userPagePath(name), c.localizerFor(r, s).T(done, out.Username))
		return nil
	}
}

// userFormNotText is the first of fields whose value is not valid UTF-8, "" when
// all are text. Such a form is refused before anything is sent: encoding
// it as JSON would silently replace the bad bytes, and the API would store
// a note or a name the admin never typed.
func userFormNotText(r *http.Request, fields ...string) string {
	for _, f := range fields {
		if !utf8.ValidString(r.PostFormValue(f)) {
			return f
		}
	}
	return ""
}

// userTextRefusal is the form state of a form refused by userFormNotText. The typed
// values come back with the bad bytes replaced, so the page shows text.
func (c *Console) userTextRefusal(r *http.Request, s *session, form, field string) *formState {
	typed := url.Values{}
	for k, vs := range r.PostForm {
		for _, v := range vs {
			typed.Add(strings.ToValidUTF8(k, "\uFFFD"), strings.ToValidUTF8(v, "\uFFFD"))
		}
	}
	return &formState{Form: form, Message: c.localizerFor(r, s).T("user.not_text", field), Field: field, Values: typed}
}
