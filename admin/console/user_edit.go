package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// userEditValues are the edit form's fields as the page shows them: the
// user's current settings, or what was typed when the API refused them.
type userEditValues struct {
	Username     string
	Project      string
	Partner      bool
	MonthlyGrant string
	KeyExpiresOn string // YYYY-MM-DD (UTC), "" for no expiry
}

func userEditValuesOf(u userDetail) userEditValues {
	v := userEditValues{Username: u.Username, Project: u.ProjectName(), Partner: u.Partner,
		MonthlyGrant: u.MonthlyGrant.String()}
	if u.Key != nil {
		v.KeyExpiresOn = userExpiryDay(u.Key.ExpiresAt)
	}
	return v
}

func userEditValuesTyped(u userDetail, typed url.Values) userEditValues {
	v := userEditValues{Username: typed.Get("username"), Project: typed.Get("project"),
		Partner: typed.Get("partner") == "true", MonthlyGrant: typed.Get("monthly_grant"),
		KeyExpiresOn: typed.Get("key_expires_at")}
	if !typed.Has("username") { // disabled once the user has usage: not sent
		v.Username = u.Username
	}
	return v
}

// userExpiryDay is the UTC day of an RFC 3339 expiry, as a date input shows it.
func userExpiryDay(at *string) string {
	if at == nil {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, *at)
	if err != nil {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// userPatch compares the edit form with the user's current settings and
// returns the PATCH body with only the fields that changed, so that an
// unchanged field is neither audited nor re-validated (a key expiry that
// has meanwhile passed, a rename refused once the user has usage).
func userPatch(u userDetail, typed url.Values) map[string]any {
	body := map[string]any{}
	if typed.Has("username") {
		if name := typed.Get("username"); name != u.Username {
			body["username"] = name // the API names what is wrong with it, "" included
		}
	}
	if project := typed.Get("project"); project != u.ProjectName() {
		if project == "" {
			body["project"] = nil
		} else {
			body["project"] = project
		}
	}
	if partner := typed.Get("partner") == "true"; partner != u.Partner {
		body["partner"] = partner
	}
	grant := typed.Get("monthly_grant")
	if strings.TrimSpace(grant) == "" {
		grant = "0" // an emptied field means no grant
	}
	if raw, ok := formCredits(grant); ok && !userSameCredits(raw, u.MonthlyGrant) {
		body["monthly_grant"] = raw
	}
	current := ""
	if u.Key != nil {
		current = userExpiryDay(u.Key.ExpiresAt)
	}
	if day := strings.TrimSpace(typed.Get("key_expires_at")); day != current {
		body["key_expires_at"] = userExpiryValue(day)
	}
	return body
}

// userSameCredits reports whether the typed JSON number equals the current
// value exactly; anything unreadable counts as a change, for the API to
// refuse with its sentence.
func userSameCredits(raw json.RawMessage, current json.Number) bool {
	typed, ok1 := parseMicro(string(raw))
	now, ok2 := parseMicro(current.String())
	return ok1 && ok2 && typed == now
}

// userExpiryValue is the key_expires_at the API gets for a date input: null
// for none, the start of that day in UTC for a date (the API refuses one
// not in the future), and anything else as typed, for the API's sentence.
func userExpiryValue(day string) any {
	if day == "" {
		return nil
	}
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	return t.UTC().Format(time.RFC3339)
}

// userEdit: the edit form → PATCH /users/{name} with the changed fields.
// A rename lands on the new name's page.
func (c *Console) userEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if err := r.ParseForm(); err != nil {
		return err
	}
	if f := userFormNotText(r, "username", "project", "partner", "monthly_grant", "key_expires_at"); f != "" {
		return c.renderUser(w, r, s, name, http.StatusBadRequest, c.userTextRefusal(r, s, "edit", f))
	}
	u, err := c.loadUserDetail(r, s, name)
	if err != nil {
		return err
	}
	l := c.localizerFor(r, s)
	body := userPatch(u, r.PostForm)
	if len(body) == 0 {
		c.redirect(w, r, s, userPagePath(name), l.T("user.unchanged"))
		return nil
	}
	var out userDetail
	if err := c.call(r, s, http.MethodPatch, userDetailPath(name), nil, body, &out); err != nil {
		return c.userRefused(w, r, s, name, "edit", err)
	}
	c.redirect(w, r, s, userPagePath(out.Username), l.T("user.saved", out.Username))
	return nil
}
