package admin

import "net/http"

func (a *api) whoamiRoutes() []route {
	return []route{
		{method: "GET", path: "/whoami", h: a.whoami},
	}
}

// whoamiJSON is the GET /whoami answer: which configured token made the
// request. The console signs in with it; scripts can check a token.
type whoamiJSON struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// whoami: GET /whoami → {"name": "ops", "role": "admin"}.
func (a *api) whoami(w http.ResponseWriter, r *http.Request) error {
	p, _ := r.Context().Value(principalKey{}).(principal)
	writeJSON(w, http.StatusOK, whoamiJSON{Name: p.name, Role: p.role})
	return nil
}
