package console

import (
	"encoding/json"
	"net/http"
)

// projectPages are the projects screen (list and create, projects.go),
// one project's page and its actions (project.go) and its deletion
// (project_delete.go).
func (c *Console) projectPages() []page {
	return []page{
		{method: "GET", path: "/projects", h: c.projectList},
		{method: "POST", path: "/projects", h: c.projectCreate, write: true},
		{method: "GET", path: "/projects/{name}", h: c.projectShow},
		{method: "POST", path: "/projects/{name}/settings", h: c.projectSave, write: true},
		{method: "POST", path: "/projects/{name}/pool", h: c.projectPool, write: true},
		{method: "POST", path: "/projects/{name}/settle", h: c.projectSettle, write: true},
		{method: "GET", path: "/projects/{name}/delete", h: c.projectDeleteConfirm},
		{method: "POST", path: "/projects/{name}/delete", h: c.projectDelete, write: true},
	}
}

// apiProject is a Project of the API. Credits stay json.Number: exact
// decimals, never floats.
type apiProject struct {
	Name      string `json:"name"`
	Allowance struct {
		Amount   json.Number `json:"amount"`
		Period   string      `json:"period"`
		Timezone string      `json:"timezone"`
	} `json:"allowance"`
	Pool struct {
		Enabled      bool         `json:"enabled"`
		Balance      json.Number  `json:"balance"`
		PerUserLimit *json.Number `json:"per_user_limit"`
	} `json:"pool"`
	Users     int64  `json:"users"`
	CreatedAt string `json:"created_at"`
}

// projectPeriods are the allowance periods, in the order the selects
// show them.
var projectPeriods = []string{"none", "daily", "weekly", "monthly"}

type projectsData struct {
	Projects []apiProject
	Periods  []string
	Form     *formState
}

func (c *Console) projectList(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.renderProjects(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderProjects(w http.ResponseWriter, r *http.Request, s *session, status int, form *formState) error {
	var out struct {
		Projects []apiProject `json:"projects"`
	}
	if err := c.call(r, s, http.MethodGet, "/projects", nil, nil, &out); err != nil {
		return err
	}
	c.render(w, r, s, status, "projects", "page.projects", projectsData{Projects: out.Projects, Periods: projectPeriods, Form: form})
	return nil
}

// projectCreate: the create form → POST /projects. An empty allowance
// amount is 0 and an empty time zone UTC, as in the API.
func (c *Console) projectCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PostFormValue("name")
	allowance := map[string]any{"period": r.PostFormValue("allowance_period"), "timezone": r.PostFormValue("allowance_timezone")}
	credits(allowance, "amount", r.PostFormValue("allowance_amount"))
	body := map[string]any{"name": name, "allowance": allowance,
		"pool": map[string]any{"enabled": r.PostFormValue("pool_enabled") == "true"}}
	if err := c.call(r, s, http.MethodPost, "/projects", nil, body, nil); err != nil {
		form, status, err := refused(err, "create", r)
		if err != nil {
			return err
		}
		return c.renderProjects(w, r, s, status, form)
	}
	c.redirect(w, r, s, "/projects", c.localizerFor(r, s).T("projects.created", name))
	return nil
}
