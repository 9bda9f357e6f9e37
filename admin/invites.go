package admin

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// Invite links: an admin creates a one-time link for a user instead of
// sending the key; the person who opens it claims a fresh key through the
// public POST /claim (see metering/invites.go for the guarantees).
func (a *api) inviteRoutes() []route {
	return []route{
		{method: "POST", path: "/users/{username}/invite", h: a.createInvite},
		{method: "GET", path: "/users/{username}/invites", h: a.listInvites},
		{method: "DELETE", path: "/users/{username}/invites/{id}", h: a.revokeInvite},
		// Public like /health: the claimant has the link, not an admin token.
		{method: "POST", path: "/claim", h: a.claimInvite, public: true},
		{method: "POST", path: "/claim/check", h: a.checkInvite, public: true},
	}
}

// claimPagePath is where an invite's link points, below the public URL:
// the page (served elsewhere) that posts the token to POST /claim.
const claimPagePath = "/claim/"

// createInviteRequest is the optional body of POST /users/{username}/invite.
type createInviteRequest struct {
	ExpiresAt *string `json:"expires_at"`
}

// inviteCreatedJSON answers a creation: the link, shown this once.
type inviteCreatedJSON struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// inviteJSON is a pending invite in a listing: never its token or link.
type inviteJSON struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by"`
}

// createInvite: POST /users/{username}/invite, body optional
// {"expires_at": RFC 3339} → 201 {"id", "url", "expires_at"}; 404 unknown
// user, 409 deactivated user. The token in url is shown this once and is
// neither stored (only its SHA-256) nor logged nor audited.
func (a *api) createInvite(w http.ResponseWriter, r *http.Request) error {
	var req createInviteRequest
	// The body is optional: none at all means the defaults.
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); err != io.EOF {
		r.Body = struct {
			io.Reader
			io.Closer
		}{body, r.Body}
		if err := a.decodeBody(w, r, &req); err != nil {
			return err
		}
	}
	expires := a.engine.Now().Add(a.cfg.InviteTTL)
	if req.ExpiresAt != nil {
		t, err := parseTime("expires_at", req.ExpiresAt)
		if err != nil {
			return err
		}
		expires = *t
	}
	inv, token, err := a.engine.CreateInvite(r.Context(), actor(r), r.PathValue("username"), expires)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, inviteCreatedJSON{ID: inv.ID, URL: a.publicBase(r) + claimPagePath + token,
		ExpiresAt: timeJSON(inv.ExpiresAt)})
	return nil
}

// publicBase is the scheme and host (and any path) the gateway is reached
// at: Config.PublicURL, or else what this request came to. The latter
// trusts the Host header, which only an admin sends here (the route needs
// an admin token); set public_url when the admin API is reached under
// another name than the one users should open.
func (a *api) publicBase(r *http.Request) string {
	if a.cfg.PublicURL != "" {
		return strings.TrimSuffix(a.cfg.PublicURL, "/")
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return scheme + r.Host
}

// listInvites: GET /users/{username}/invites → {"invites": [Invite]}, the
// pending ones, newest first.
func (a *api) listInvites(w http.ResponseWriter, r *http.Request) error {
	invs, err := a.engine.ListInvites(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	out := struct {
		Invites []inviteJSON `json:"invites"`
	}{Invites: make([]inviteJSON, len(invs))}
	for i, inv := range invs {
		out.Invites[i] = inviteJSON{ID: inv.ID, CreatedAt: timeJSON(inv.CreatedAt), ExpiresAt: timeJSON(inv.ExpiresAt),
			CreatedBy: inv.CreatedBy}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeInvite: DELETE /users/{username}/invites/{id} → 204; 404 when the
// user has no such pending invite.
func (a *api) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	if err := a.engine.RevokeInvite(r.Context(), actor(r), r.PathValue("username"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// claimRequest is the body of POST /claim and POST /claim/check.
type claimRequest struct {
	Token string `json:"token"`
}

// claimToken reads the body of a claim or a check.
func (a *api) claimToken(w http.ResponseWriter, r *http.Request) (string, error) {
	var req claimRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return "", err
	}
	if req.Token == "" {
		return "", invalidArg("token", "is required")
	}
	return req.Token, nil
}

// checkInvite: POST /claim/check {"token"} → 200 {"expires_at"} when a
// claim would succeed now, else 410 gone exactly as POST /claim answers;
// nothing is claimed. A POST so the token stays out of URLs and logs.
func (a *api) checkInvite(w http.ResponseWriter, r *http.Request) error {
	token, err := a.claimToken(w, r)
	if err != nil {
		return err
	}
	expires, err := a.engine.CheckInvite(r.Context(), token)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		ExpiresAt time.Time `json:"expires_at"`
	}{timeJSON(expires)})
	return nil
}

// claimInvite: POST /claim {"token"} → 200 {"username", "api_key"}; 410
// gone, one message whatever the reason, when the token is not claimable;
// 400 for a malformed body. No admin token: the invite's token is the
// credential.
func (a *api) claimInvite(w http.ResponseWriter, r *http.Request) error {
	token, err := a.claimToken(w, r)
	if err != nil {
		return err
	}
	username, key, err := a.engine.ClaimInvite(r.Context(), token)
	if errors.Is(err, metering.ErrUnavailable) {
		// Unlike a money change, a failed claim is known not to have
		// happened (metering.ClaimInvite rolls it back): say so.
		a.log.Warn("invite claim failed", zap.String("path", r.URL.Path), zap.Error(err))
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "The gateway's storage is unavailable; the invite link was not used, try again later."}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Username string `json:"username"`
		APIKey   string `json:"api_key"`
	}{username, key})
	return nil
}
