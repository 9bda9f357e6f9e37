package admin

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/metering"
)

func (a *api) projectRoutes() []route {
	return []route{
		{method: "POST", path: "/projects", h: a.createProject},
		{method: "GET", path: "/projects", h: a.listProjects},
		{method: "GET", path: "/projects/{name}", h: a.getProject},
		{method: "PATCH", path: "/projects/{name}", h: a.patchProject},
		{method: "POST", path: "/projects/{name}/pool", h: a.adjustPool},
		{method: "POST", path: "/projects/{name}/settle", h: a.settleProject},
		{method: "DELETE", path: "/projects/{name}", h: a.deleteProject},
	}
}

// projectJSON is the Project object of the contract.
type projectJSON struct {
	Name      string        `json:"name"`
	Allowance allowanceJSON `json:"allowance"`
	Pool      poolJSON      `json:"pool"`
	Users     int64         `json:"users"`
	CreatedAt time.Time     `json:"created_at"`
}

type allowanceJSON struct {
	Amount   metering.Credits `json:"amount"`
	Period   metering.Period  `json:"period"`
	Timezone string           `json:"timezone"`
}

type poolJSON struct {
	Enabled      bool              `json:"enabled"`
	Balance      metering.Credits  `json:"balance"`
	PerUserLimit *metering.Credits `json:"per_user_limit"`
}

func projectOut(p metering.Project) projectJSON {
	return projectJSON{
		Name:      p.Name,
		Allowance: allowanceJSON{Amount: p.AllowanceAmount, Period: p.Period, Timezone: p.TimeZone},
		Pool:      poolJSON{Enabled: p.PoolEnabled, Balance: p.PoolBalance, PerUserLimit: p.PoolPerUserLimit},
		Users:     p.Users,
		CreatedAt: timeJSON(p.CreatedAt),
	}
}

// createProjectRequest is the body of POST /projects.
type createProjectRequest struct {
	Name      string `json:"name"`
	Allowance struct {
		Amount   amount `json:"amount"`
		Period   string `json:"period"`
		Timezone string `json:"timezone"`
	} `json:"allowance"`
	Pool struct {
		Enabled      bool   `json:"enabled"`
		Balance      amount `json:"balance"`
		PerUserLimit amount `json:"per_user_limit"`
	} `json:"pool"`
}

func (req *createProjectRequest) spec() (metering.ProjectSpec, error) {
	s := metering.ProjectSpec{Name: req.Name, Period: metering.Period(req.Allowance.Period),
		TimeZone: req.Allowance.Timezone, PoolEnabled: req.Pool.Enabled}
	var err error
	if s.AllowanceAmount, err = req.Allowance.Amount.credits("allowance.amount"); err != nil {
		return s, err
	}
	if s.PoolBalance, err = req.Pool.Balance.credits("pool.balance"); err != nil {
		return s, err
	}
	if s.PoolPerUserLimit, err = req.Pool.PerUserLimit.optionalCredits("pool.per_user_limit"); err != nil {
		return s, err
	}
	return s, nil
}

// createProject: POST /projects → 201 Project; 409 when the name is taken.
func (a *api) createProject(w http.ResponseWriter, r *http.Request) error {
	var req createProjectRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return invalidArg("name", "is required")
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	p, err := a.engine.CreateProject(r.Context(), actor(r), spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, projectOut(p))
	return nil
}

// listProjects: GET /projects → {"projects":[Project]}, by name.
func (a *api) listProjects(w http.ResponseWriter, r *http.Request) error {
	ps, err := a.engine.ListProjects(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Projects []projectJSON `json:"projects"`
	}{Projects: make([]projectJSON, len(ps))}
	for i, p := range ps {
		out.Projects[i] = projectOut(p)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getProject: GET /projects/{name} → Project.
func (a *api) getProject(w http.ResponseWriter, r *http.Request) error {
	p, err := a.engine.GetProject(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projectOut(p))
	return nil
}

// adjustPoolRequest is the body of POST /projects/{name}/pool.
type adjustPoolRequest struct {
	Delta amount `json:"delta"`
	Note  string `json:"note"`
}

// adjustPool: POST /projects/{name}/pool {"delta","note"} → Project; 409
// when the pool would go below zero.
func (a *api) adjustPool(w http.ResponseWriter, r *http.Request) error {
	var req adjustPoolRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	delta, err := req.Delta.requiredCredits("delta")
	if err != nil {
		return err
	}
	p, err := a.engine.AdjustPool(r.Context(), actor(r), r.PathValue("name"), delta, req.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projectOut(p))
	return nil
}

// patchProjectRequest is the body of PATCH /projects/{name}: absent fields
// stay as they are; pool.per_user_limit null removes the limit.
type patchProjectRequest struct {
	Allowance *struct {
		Amount   amount  `json:"amount"`
		Period   *string `json:"period"`
		Timezone *string `json:"timezone"`
	} `json:"allowance"`
	Pool *struct {
		Enabled      *bool  `json:"enabled"`
		PerUserLimit amount `json:"per_user_limit"`
		Balance      amount `json:"balance"`
	} `json:"pool"`
}

func (req *patchProjectRequest) patch() (metering.ProjectPatch, error) {
	var c metering.ProjectPatch
	if al := req.Allowance; al != nil {
		if al.Amount.raw != nil {
			if !al.Amount.given() {
				return c, invalidArg("allowance.amount", "must be a number of credits, not null")
			}
			v, err := al.Amount.credits("allowance.amount")
			if err != nil {
				return c, err
			}
			c.AllowanceAmount = &v
		}
		if al.Period != nil {
			p := metering.Period(*al.Period)
			c.Period = &p
		}
		c.TimeZone = al.Timezone
	}
	if pl := req.Pool; pl != nil {
		if pl.Balance.raw != nil {
			return c, invalidArg("pool.balance", "is changed with POST /projects/{name}/pool, which records the change")
		}
		c.PoolEnabled = pl.Enabled
		if pl.PerUserLimit.raw != nil {
			limit, err := pl.PerUserLimit.optionalCredits("pool.per_user_limit")
			if err != nil {
				return c, err
			}
			c.SetPerUserLimit, c.PoolPerUserLimit = true, limit
		}
	}
	return c, nil
}

// patchProject: PATCH /projects/{name} → Project. The project's version is
// bumped, so gateways use the new settings from their next charge.
func (a *api) patchProject(w http.ResponseWriter, r *http.Request) error {
	var req patchProjectRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	c, err := req.patch()
	if err != nil {
		return err
	}
	p, err := a.engine.UpdateProject(r.Context(), actor(r), r.PathValue("name"), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projectOut(p))
	return nil
}

// settleProject: POST /projects/{name}/settle → Project, after every
// member's due allowance refill (and monthly grant) is applied and recorded.
func (a *api) settleProject(w http.ResponseWriter, r *http.Request) error {
	p, err := a.engine.RefreshProject(r.Context(), actor(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, projectOut(p))
	return nil
}

// deleteProject: DELETE /projects/{name} → 204; 409 while users are assigned.
func (a *api) deleteProject(w http.ResponseWriter, r *http.Request) error {
	if err := a.engine.DeleteProject(r.Context(), actor(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
