package console

import (
	"net/http"
	"strings"
)

// The claim pages are where an invite link leads (POST /users/{name}/invite
// makes one). They need no session: the link is the credential, used once.
//
// Opening the link only shows a button; the key is made when it is
// pressed (a POST). Mail filters and chat previews open links by
// themselves, and a GET that made the key would let them spend the link
// before its owner sees it. GET still answers 410 once the link is spent.
func (c *Console) claimPages() []page {
	return []page{
		{method: "GET", path: "/{token}", h: c.claimForm, public: true, claim: true},
		{method: "POST", path: "/{token}", h: c.claim, public: true, claim: true},
	}
}

type claimData struct {
	Username string
	Key      string
	Gateway  string // the gateway's address, for the instructions
	Token    string
}

// claimForm: GET /claim/{token} shows the button, or 410 when the link
// is used, revoked, expired or unknown.
func (c *Console) claimForm(w http.ResponseWriter, r *http.Request, _ *session) error {
	token := r.PathValue("token")
	if err := c.callAs(r, "", http.MethodPost, "/claim/check", nil, map[string]string{"token": token}, nil); err != nil {
		return c.claimRefused(w, r, err)
	}
	c.render(w, r, nil, http.StatusOK, "claim", "page.claim", claimData{Token: token}, publicFormToken(w, r))
	return nil
}

// claim: POST /claim/{token} makes the key and shows it, once.
func (c *Console) claim(w http.ResponseWriter, r *http.Request, _ *session) error {
	var out struct {
		Username string `json:"username"`
		APIKey   string `json:"api_key"`
	}
	if err := c.callAs(r, "", http.MethodPost, "/claim", nil, map[string]string{"token": r.PathValue("token")}, &out); err != nil {
		return c.claimRefused(w, r, err)
	}
	clearPublicFormToken(w, r)
	c.render(w, r, nil, http.StatusOK, "claim", "page.claim", claimData{Username: out.Username, Key: out.APIKey,
		Gateway: gatewayBase(r)})
	return nil
}

// claimRefused renders a spent link as 410 with the API's explanation.
func (c *Console) claimRefused(w http.ResponseWriter, r *http.Request, err error) error {
	var ae *apiError
	if asAPIError(err, &ae) && ae.Status == http.StatusGone {
		c.render(w, r, nil, http.StatusGone, "error", "page.claim", errorData{Key: "claim.gone"})
		return nil
	}
	return err
}

// gatewayBase is the address the claimant's tools should call: the
// site the link was opened on.
func gatewayBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.TrimSuffix(r.Host, "/")
}
