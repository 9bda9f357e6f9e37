package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Invite links on the user page: make one (its link is shown once, in the
// answer to the form, like a key), list the pending ones, withdraw one.
func (c *Console) inviteRoutes() []page {
	return []page{
		{method: "POST", path: "/users/{name}/invite", h: c.inviteCreate, write: true},
		{method: "POST", path: "/users/{name}/invites/{id}/revoke", h: c.inviteRevoke, write: true},
	}
}

// pendingInvite is an Invite of GET /users/{name}/invites.
type pendingInvite struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at"`
	CreatedBy string `json:"created_by"`
}

// createdInvite is the answer of POST /users/{name}/invite.
type createdInvite struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

func (c *Console) loadInvites(r *http.Request, s *session, name string) ([]pendingInvite, error) {
	var out struct {
		Invites []pendingInvite `json:"invites"`
	}
	err := c.call(r, s, http.MethodGet, userDetailPath(name)+"/invites", nil, nil, &out)
	return out.Invites, err
}

// inviteCreate makes a link valid for the days chosen (the API's default
// when none) and shows it on the user page, in this answer only.
func (c *Console) inviteCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	body := map[string]any{}
	if typed := strings.TrimSpace(r.PostFormValue("days")); typed != "" {
		days, err := strconv.Atoi(typed)
		if err != nil || days <= 0 {
			return c.userRefused(w, r, s, name, "invite", &apiError{Status: http.StatusBadRequest, Code: "invalid_argument",
				Message: c.localizerFor(r, s).T("invite.bad_days")})
		}
		// The API refuses more than it allows, with its own sentence.
		body["expires_at"] = c.cfg.Now().UTC().AddDate(0, 0, days).Format(time.RFC3339)
	}
	var inv createdInvite
	if err := c.call(r, s, http.MethodPost, userDetailPath(name)+"/invite", nil, body, &inv); err != nil {
		return c.userRefused(w, r, s, name, "invite", err)
	}
	return c.renderUserWith(w, r, s, name, http.StatusOK, nil, &inv)
}

func (c *Console) inviteRevoke(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if err := c.call(r, s, http.MethodDelete, userDetailPath(name)+"/invites/"+pathSegment(r.PathValue("id")), nil, nil, nil); err != nil {
		return c.userRefused(w, r, s, name, "invite", err)
	}
	c.redirect(w, r, s, userPagePath(name), c.localizerFor(r, s).T("invite.revoked"))
	return nil
}
