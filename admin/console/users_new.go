package console

import (
	"net/http"
	"strings"
	"time"
)

func (c *Console) userCreatePages() []page {
	return []page{
		{method: "GET", path: "/users/new", h: c.userNewForm},
		{method: "POST", path: "/users/new", h: c.userCreate, write: true},
	}
}

type userNewData struct {
	Projects []string
	Form     *formState
}

// userCreatedData is the page shown in the answer to the create form: the
// new user's key, this once.
type userCreatedData struct {
	Username string
	APIKey   string
}

func (c *Console) userNewForm(w http.ResponseWriter, r *http.Request, s *session) error {
	if !s.canWrite() {
		c.renderError(w, r, s, http.StatusForbidden, "error.viewer")
		return nil
	}
	return c.renderUserNew(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderUserNew(w http.ResponseWriter, r *http.Request, s *session, status int, form *formState) error {
	projects, err := c.usersProjectNames(r, s)
	if err != nil {
		return err
	}
	c.render(w, r, s, status, "user_new", "page.user_new", userNewData{Projects: projects, Form: form})
	return nil
}

// userCreate: the create form → POST /users. On success the key is shown
// in this answer (never in a redirect, a flash or a URL); a refusal shows
// the form again with the API's sentence and what was typed.
func (c *Console) userCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	body := map[string]any{"username": r.PostFormValue("username")}
	if p := r.PostFormValue("project"); p != "" {
		body["project"] = p
	}
	for _, f := range []string{"initial_credits", "purchased", "monthly_grant"} {
		credits(body, f, r.PostFormValue(f))
	}
	if r.PostFormValue("partner") == "true" {
		body["partner"] = true
	}
	if d := strings.TrimSpace(r.PostFormValue("key_expires_at")); d != "" {
		body["key_expires_at"] = dayStartUTC(d)
	}
	var out struct {
		User struct {
			Username string `json:"username"`
		} `json:"user"`
		APIKey string `json:"api_key"`
	}
	if err := c.call(r, s, http.MethodPost, "/users", nil, body, &out); err != nil {
		form, status, err := refused(err, "create", r)
		if err != nil {
			return err
		}
		return c.renderUserNew(w, r, s, status, form)
	}
	c.render(w, r, s, http.StatusOK, "user_created", "page.user_created",
		userCreatedData{Username: out.User.Username, APIKey: out.APIKey})
	return nil
}

// dayStartUTC turns a date field (YYYY-MM-DD) into the RFC 3339 time the
// API takes: the start of that day in UTC. Anything else is passed on as
// typed, so that the API's sentence names the problem.
func dayStartUTC(typed string) string {
	d, err := time.Parse(time.DateOnly, typed)
	if err != nil {
		return typed
	}
	return d.UTC().Format(time.RFC3339)
}
