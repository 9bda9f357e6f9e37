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
		{method: "POST", path: "/projects/{name}/pool", h: a.adjustPool},
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
		return adjustError(err, delta)
	}
	writeJSON(w, http.StatusOK, projectOut(p))
	return nil
}
