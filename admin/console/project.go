package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// projectMember is the part of a User of the API the members table shows.
type projectMember struct {
	Username         string      `json:"username"`
	Status           string      `json:"status"`
	PersonalCredits  json.Number `json:"personal_credits"`
	EffectiveCredits json.Number `json:"effective_credits"`
	Key              *struct {
		Status string `json:"status"`
	} `json:"key"`
	LastActivityAt *string `json:"last_activity_at"`
}

// projectSettings is what the settings form shows: the project's values,
// or what was typed when the API refused them.
type projectSettings struct {
	Amount       string
	Period       string
	Timezone     string
	PoolEnabled  bool
	PerUserLimit string // "" is no limit
}

func projectSettingsOf(p apiProject) projectSettings {
	st := projectSettings{Amount: p.Allowance.Amount.String(), Period: p.Allowance.Period,
		Timezone: p.Allowance.Timezone, PoolEnabled: p.Pool.Enabled}
	if p.Pool.PerUserLimit != nil {
		st.PerUserLimit = p.Pool.PerUserLimit.String()
	}
	return st
}

func projectSettingsTyped(form url.Values) projectSettings {
	return projectSettings{Amount: form.Get("allowance_amount"), Period: form.Get("allowance_period"),
		Timezone: form.Get("allowance_timezone"), PoolEnabled: form.Get("pool_enabled") == "true",
		PerUserLimit: form.Get("pool_per_user_limit")}
}

type projectData struct {
	Project    apiProject
	Settings   projectSettings
	Periods    []string
	Members    []projectMember
	Cursor     string // this page of members ("" for the first)
	NextCursor string
	Form       *formState
}

func (c *Console) projectShow(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.renderProject(w, r, s, http.StatusOK, nil)
}

// renderProject renders the project page; form, when not nil, is a
// refused form to show again with its error and what was typed.
func (c *Console) renderProject(w http.ResponseWriter, r *http.Request, s *session, status int, form *formState) error {
	name := r.PathValue("name")
	var p apiProject
	if err := c.call(r, s, http.MethodGet, "/projects/"+pathSegment(name), nil, nil, &p); err != nil {
		return err
	}
	// Members are read page by page, as the users list does; the cursor
	// comes in the page's own query (forms post without it: first page).
	cursor := r.URL.Query().Get("cursor")
	q := url.Values{"project": {p.Name}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var members struct {
		Users      []projectMember `json:"users"`
		NextCursor string          `json:"next_cursor"`
	}
	if err := c.call(r, s, http.MethodGet, "/users", q, nil, &members); err != nil {
		return err
	}
	d := projectData{Project: p, Settings: projectSettingsOf(p), Periods: projectPeriods, Members: members.Users,
		Cursor: cursor, NextCursor: members.NextCursor, Form: form}
	if form.For("settings") {
		d.Settings = projectSettingsTyped(form.Values)
	}
	c.render(w, r, s, status, "project", "page.project", d)
	return nil
}

// projectSave: the settings form → PATCH /projects/{name} with only the
// fields that differ from the project now, so the audit entry lists
// what was changed and nothing else.
func (c *Console) projectSave(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	var p apiProject
	if err := c.call(r, s, http.MethodGet, "/projects/"+pathSegment(name), nil, nil, &p); err != nil {
		return err
	}
	body := projectPatchBody(projectSettingsOf(p), projectSettingsTyped(r.PostForm))
	l := c.localizerFor(r, s)
	if len(body) == 0 {
		c.redirect(w, r, s, "/projects/"+pathSegment(name), l.T("project.unchanged"))
		return nil
	}
	if err := c.call(r, s, http.MethodPatch, "/projects/"+pathSegment(name), nil, body, nil); err != nil {
		form, status, err := refused(err, "settings", r)
		if err != nil {
			return err
		}
		return c.renderProject(w, r, s, status, form)
	}
	c.redirect(w, r, s, "/projects/"+pathSegment(name), l.T("project.saved", name))
	return nil
}

// projectPatchBody is the PATCH body for what changed from was to typed;
// empty when nothing did. Credits are compared as exact amounts ("100"
// and "100,0" are the same); what does not read as an amount is sent, so
// that the API names the problem.
func projectPatchBody(was, typed projectSettings) map[string]any {
	allowance := map[string]any{}
	amount := typed.Amount
	if strings.TrimSpace(amount) == "" {
		amount = "0" // an empty allowance is none, as when creating
	}
	if !projectSameCredits(was.Amount, amount) {
		credits(allowance, "amount", amount)
	}
	if typed.Period != was.Period {
		allowance["period"] = typed.Period
	}
	zone := strings.TrimSpace(typed.Timezone)
	if zone == "" {
		zone = "UTC" // as the API reads an empty time zone
	}
	if zone != was.Timezone {
		allowance["timezone"] = zone
	}
	pool := map[string]any{}
	if typed.PoolEnabled != was.PoolEnabled {
		pool["enabled"] = typed.PoolEnabled
	}
	if !projectSameCredits(was.PerUserLimit, typed.PerUserLimit) {
		pool["per_user_limit"] = nil // an empty field removes the limit
		credits(pool, "per_user_limit", typed.PerUserLimit)
	}
	body := map[string]any{}
	if len(allowance) > 0 {
		body["allowance"] = allowance
	}
	if len(pool) > 0 {
		body["pool"] = pool
	}
	return body
}

// projectSameCredits reports whether a stored amount (as the API writes it, or
// "" for none) and a typed one are the same amount.
func projectSameCredits(stored, typed string) bool {
	raw, ok := formCredits(typed)
	if !ok {
		return stored == ""
	}
	if stored == "" {
		return false
	}
	a, okA := parseMicro(stored)
	b, okB := parseMicro(string(raw))
	return okA && okB && a == b
}

// projectPool: the pool form → POST /projects/{name}/pool.
func (c *Console) projectPool(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	body := map[string]any{"note": r.PostFormValue("note")}
	credits(body, "delta", r.PostFormValue("delta"))
	var p apiProject
	if err := c.call(r, s, http.MethodPost, "/projects/"+pathSegment(name)+"/pool", nil, body, &p); err != nil {
		form, status, err := refused(err, "pool", r)
		if err != nil {
			return err
		}
		return c.renderProject(w, r, s, status, form)
	}
	l := c.localizerFor(r, s)
	c.redirect(w, r, s, "/projects/"+pathSegment(name), l.T("project.pool_changed", l.Credits(p.Pool.Balance)))
	return nil
}

// projectSettle: the settle form → POST /projects/{name}/settle.
func (c *Console) projectSettle(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if err := c.call(r, s, http.MethodPost, "/projects/"+pathSegment(name)+"/settle", nil, nil, nil); err != nil {
		form, status, err := refused(err, "settle", r)
		if err != nil {
			return err
		}
		return c.renderProject(w, r, s, status, form)
	}
	c.redirect(w, r, s, "/projects/"+pathSegment(name), c.localizerFor(r, s).T("project.settled", name))
	return nil
}
