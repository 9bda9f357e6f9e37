package admin

import (
	"encoding/json"
	"net/http"

	"github.com/tollgate/tollgate/metering"
)

// deleteUser: DELETE /users/{username} → 204; 409 while the user has
// requests in flight. Its usage history stays in the ledger.
func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := a.engine.DeleteUser(r.Context(), actor(r), r.PathValue("username")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revealKey: GET /users/{username}/key → {"api_key": "tg_..."}, audited;
// 409 reveal_disabled without a key-encryption key. The key is never logged.
// A GET, but it hands out a credential: the route is adminOnly.
func (a *api) revealKey(w http.ResponseWriter, r *http.Request) error {
	key, err := a.engine.RevealKey(r.Context(), actor(r), r.PathValue("username"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiKeyJSON{key})
	return nil
}

// patchUserRequest is the body of PATCH /users/{username}. Raw fields tell
// an absent field (unchanged) from an explicit null.
type patchUserRequest struct {
	Username     json.RawMessage `json:"username"`
	Project      json.RawMessage `json:"project"`
	MonthlyGrant amount          `json:"monthly_grant"`
	Partner      json.RawMessage `json:"partner"`
	KeyExpiresAt json.RawMessage `json:"key_expires_at"`
}

func (req *patchUserRequest) patch() (metering.UserPatch, error) {
	var p metering.UserPatch
	if req.Username != nil {
		var s string
		if json.Unmarshal(req.Username, &s) != nil || s == "" {
			return p, invalidArg("username", "must be a username string")
		}
		p.Username = &s
	}
	if req.Project != nil {
		p.SetProject = true
		if !isNull(req.Project) {
			if json.Unmarshal(req.Project, &p.Project) != nil || p.Project == "" {
				return p, invalidArg("project", "must be a project name or null")
			}
		}
	}
	if req.MonthlyGrant.raw != nil {
		g, err := req.MonthlyGrant.requiredCredits("monthly_grant")
		if err != nil {
			return p, err
		}
		p.MonthlyGrant = &g
	}
	if req.Partner != nil {
		var b bool
		if json.Unmarshal(req.Partner, &b) != nil || isNull(req.Partner) {
			return p, invalidArg("partner", "must be true or false")
		}
		p.Partner = &b
	}
	if req.KeyExpiresAt != nil {
		p.SetKeyExpiry = true
		if !isNull(req.KeyExpiresAt) {
			var s string
			if json.Unmarshal(req.KeyExpiresAt, &s) != nil {
				return p, invalidArg("key_expires_at", "must be an RFC 3339 time string or null")
			}
			t, err := parseTime("key_expires_at", &s)
			if err != nil {
				return p, err
			}
			p.KeyExpiresAt = t
		}
	}
	return p, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// patchUser: PATCH /users/{username} → User. A rename is refused with 409
// once the user has usage history; a new project applies from the next
// request, with its full allowance and pool access.
func (a *api) patchUser(w http.ResponseWriter, r *http.Request) error {
	var req patchUserRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	p, err := req.patch()
	if err != nil {
		return err
	}
	v, err := a.engine.PatchUser(r.Context(), actor(r), r.PathValue("username"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.userOut(v))
	return nil
}
