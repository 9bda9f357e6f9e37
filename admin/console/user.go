package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
)

// The user page: one user's balances, key, usage and every action on it.
// Reads are GETs of the API; each action is its own form posting to its
// own route (user_actions.go, user_key.go), so that a refusal re-renders
// this page with the API's sentence next to the form that failed.
func (c *Console) userPages() []page {
	return []page{
		{method: "GET", path: "/users/{name}", h: c.userShow},
		// The page of a user named like another screen (new, import,
		// export): those screens own /users/new and the like.
		{method: "GET", path: "/users/{name}/{$}", h: c.userShow},
		{method: "POST", path: "/users/{name}/edit", h: c.userEdit, write: true},
		{method: "POST", path: "/users/{name}/credits", h: c.userCredits, write: true},
		{method: "POST", path: "/users/{name}/transfer", h: c.userTransfer, write: true},
		{method: "POST", path: "/users/{name}/deactivate", h: c.userSetActive(false), write: true},
		{method: "POST", path: "/users/{name}/activate", h: c.userSetActive(true), write: true},
		// Key and delete actions: a GET confirmation page whose form POSTs.
		{method: "GET", path: "/users/{name}/key", h: c.userConfirm(userActionReveal)},
		{method: "POST", path: "/users/{name}/key", h: c.userReveal, write: true},
		{method: "GET", path: "/users/{name}/rotate", h: c.userConfirm(userActionRotate)},
		{method: "POST", path: "/users/{name}/rotate", h: c.userRotate, write: true},
		{method: "GET", path: "/users/{name}/delete", h: c.userConfirm(userActionDelete)},
		{method: "POST", path: "/users/{name}/delete", h: c.userDelete, write: true},
	}
}

// userDetail is the User object of the API, as the user page shows it.
// Credits stay json.Number (exact decimals); times stay RFC 3339 strings.
type userDetail struct {
	Username           string          `json:"username"`
	Project            *string         `json:"project"`
	Status             string          `json:"status"`
	PersonalCredits    json.Number     `json:"personal_credits"`
	Awarded            json.Number     `json:"awarded"`
	Purchased          json.Number     `json:"purchased"`
	AllowanceRemaining json.Number     `json:"allowance_remaining"`
	PoolAvailable      json.Number     `json:"pool_available"`
	EffectiveCredits   json.Number     `json:"effective_credits"`
	MonthlyGrant       json.Number     `json:"monthly_grant"`
	Partner            bool            `json:"partner"`
	NextGrantAt        *string         `json:"next_grant_at"`
	Key                *userKeyDetails `json:"key"`
	HasUsage           bool            `json:"has_usage"`
	InFlight           int64           `json:"in_flight"`
	LastActivityAt     *string         `json:"last_activity_at"`
	CreatedAt          string          `json:"created_at"`
}

// userKeyDetails is the key part of a User: never the key itself.
type userKeyDetails struct {
	Prefix    string  `json:"prefix"`
	Status    string  `json:"status"`
	CreatedAt string  `json:"created_at"`
	ExpiresAt *string `json:"expires_at"`
}

// ProjectName is the user's project, "" when unassigned.
func (u userDetail) ProjectName() string {
	if u.Project == nil {
		return ""
	}
	return *u.Project
}

// Active reports whether the user may use its key (status active).
func (u userDetail) Active() bool { return u.Status == "active" }

// userPageData is what templates/user.html renders.
type userPageData struct {
	User     userDetail
	Projects []string // every project's name, for the project select
	Edit     userEditValues
	Usage    userUsage
	Form     *formState // the form the API refused, if any
	// Invites are the pending invite links; NewInvite the one just made,
	// whose link this answer shows once.
	Invites   []pendingInvite
	NewInvite *createdInvite
}

// V is what was typed into field of form when that form was refused, so a
// failed form keeps its values and the page's other forms stay empty.
func (d userPageData) V(form, field string) string {
	if !d.Form.For(form) {
		return ""
	}
	return d.Form.Value(field)
}

// userDetailPath is the path of a user, the same below the API's root and the
// console's. name comes from a URL or a form and is escaped as one
// segment, so it cannot reach another route.
func userDetailPath(name string) string { return "/users/" + pathSegment(name) }

// screensUnderUsers are the console's own pages at /users/<word>; a user
// with such a name has its page at /users/<name>/ instead.
var screensUnderUsers = map[string]bool{"new": true, "import": true, "export": true}

// userPagePath is the console path of a user's page, below BasePath.
func userPagePath(name string) string {
	if screensUnderUsers[name] {
		return userDetailPath(name) + "/"
	}
	return userDetailPath(name)
}

func (c *Console) loadUserDetail(r *http.Request, s *session, name string) (userDetail, error) {
	var u userDetail
	if name == "export" {
		// GET /users/export is the API's CSV export, so this one user is
		// read from the list instead (a search matches substrings).
		return c.findListedUser(r, s, name)
	}
	err := c.call(r, s, http.MethodGet, userDetailPath(name), nil, nil, &u)
	return u, err
}

// findListedUser reads a user from GET /users?search=name.
func (c *Console) findListedUser(r *http.Request, s *session, name string) (userDetail, error) {
	q := url.Values{"search": {name}, "limit": {"1000"}}
	for {
		var page struct {
			Users      []userDetail `json:"users"`
			NextCursor string       `json:"next_cursor"`
		}
		if err := c.call(r, s, http.MethodGet, "/users", q, nil, &page); err != nil {
			return userDetail{}, err
		}
		for _, u := range page.Users {
			if u.Username == name {
				return u, nil
			}
		}
		if page.NextCursor == "" {
			return userDetail{}, &apiError{Status: http.StatusNotFound, Code: "not_found",
				Message: fmt.Sprintf("There is no user named %q.", name)}
		}
		q.Set("cursor", page.NextCursor)
	}
}

func (c *Console) userShow(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.renderUser(w, r, s, r.PathValue("name"), http.StatusOK, nil)
}

// renderUser renders the user page, with form (a refused form) when not nil.
func (c *Console) renderUser(w http.ResponseWriter, r *http.Request, s *session, name string, status int, form *formState) error {
	return c.renderUserWith(w, r, s, name, status, form, nil)
}

// renderUserWith is renderUser showing an invite link just made.
func (c *Console) renderUserWith(w http.ResponseWriter, r *http.Request, s *session, name string, status int, form *formState, made *createdInvite) error {
	u, err := c.loadUserDetail(r, s, name)
	if err != nil {
		return err
	}
	var projects struct {
		Projects []struct {
			Name string `json:"name"`
		} `json:"projects"`
	}
	if err := c.call(r, s, http.MethodGet, "/projects", nil, nil, &projects); err != nil {
		return err
	}
	names := make([]string, 0, len(projects.Projects))
	for _, p := range projects.Projects {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	usage, err := c.loadUserUsage(r, s, u.Username)
	if err != nil {
		return err
	}
	invites, err := c.loadInvites(r, s, u.Username)
	if err != nil {
		return err
	}
	data := userPageData{User: u, Projects: names, Usage: usage, Form: form, Invites: invites, NewInvite: made}
	data.Edit = userEditValuesOf(u)
	if form.For("edit") {
		data.Edit = userEditValuesTyped(u, form.Values)
	}
	c.render(w, r, s, status, "user", "page.user", data)
	return nil
}

// userRefused re-renders the user page with the API's refusal of form, or
// returns an error that is not a refusal for the error page.
func (c *Console) userRefused(w http.ResponseWriter, r *http.Request, s *session, name, form string, err error) error {
	fs, status, err := refused(err, form, r)
	if err != nil {
		return err
	}
	return c.renderUser(w, r, s, name, status, fs)
}
