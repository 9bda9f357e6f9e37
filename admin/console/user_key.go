package console

import "net/http"

// The user page's dangerous actions: view the key, rotate it, delete the
// user. Each is a GET confirmation page whose form POSTs, so nothing
// happens by following a link and no JavaScript dialog is needed. A key
// is shown in the POST's own answer: never in a URL, a redirect, a flash
// or the session.

// userAction names a confirmed action; its entry in userActions says how
// its confirmation page looks.
type userAction string

const (
	userActionReveal userAction = "reveal"
	userActionRotate userAction = "rotate"
	userActionDelete userAction = "delete"
)

// userActionPage is what a confirmation page of an action shows. The ids
// are the console's contract with its browser tests.
type userActionPage struct {
	Title    string // catalogue key of the page title
	Question string // catalogue key, %s = the username
	Hint     string // catalogue key: what happens
	Path     string // below the user's page: where the form posts
	FormID   string
	ButtonID string
	Button   string // catalogue key of the confirm button
}

var userActions = map[userAction]userActionPage{
	userActionReveal: {Title: "page.user_reveal", Question: "user.reveal_question", Hint: "user.reveal_hint",
		Path: "/key", FormID: "reveal-form", ButtonID: "reveal-confirm", Button: "user.reveal_button"},
	userActionRotate: {Title: "page.user_rotate", Question: "user.rotate_question", Hint: "user.rotate_hint",
		Path: "/rotate", FormID: "rotate-form", ButtonID: "rotate-confirm", Button: "user.rotate_button"},
	userActionDelete: {Title: "page.user_delete", Question: "user.delete_question", Hint: "user.delete_hint",
		Path: "/delete", FormID: "delete-form", ButtonID: "delete-confirm", Button: "user.delete_button"},
}

// userConfirmData is what templates/user_confirm.html renders.
type userConfirmData struct {
	User   userDetail
	Action userActionPage
	Form   *formState
}

// userConfirm: GET of a confirmation page. Only an admin gets one: a
// viewer could not send its form anyway.
func (c *Console) userConfirm(action userAction) func(w http.ResponseWriter, r *http.Request, s *session) error {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		if !s.canWrite() {
			c.renderError(w, r, s, http.StatusForbidden, "error.viewer")
			return nil
		}
		return c.renderUserConfirm(w, r, s, action, http.StatusOK, nil)
	}
}

func (c *Console) renderUserConfirm(w http.ResponseWriter, r *http.Request, s *session, action userAction, status int, form *formState) error {
	u, err := c.loadUserDetail(r, s, r.PathValue("name"))
	if err != nil {
		return err
	}
	a := userActions[action]
	c.render(w, r, s, status, "user_confirm", a.Title, userConfirmData{User: u, Action: a, Form: form})
	return nil
}

// userConfirmRefused renders the confirmation page again with the API's
// sentence (a key that cannot be revealed, requests in flight).
func (c *Console) userConfirmRefused(w http.ResponseWriter, r *http.Request, s *session, action userAction, err error) error {
	form, status, err := refused(err, string(action), r)
	if err != nil {
		return err
	}
	return c.renderUserConfirm(w, r, s, action, status, form)
}

// userKeyData is what templates/user_keyshow.html renders: the key, this
// once, in the answer to the POST that asked for it.
type userKeyData struct {
	Username string
	Key      string
	Rotated  bool
}

// userReveal: POST of the reveal page → GET /users/{name}/key, which the
// API audits (with the key's prefix only).
func (c *Console) userReveal(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := c.call(r, s, http.MethodGet, userDetailPath(name)+"/key", nil, nil, &out); err != nil {
		return c.userConfirmRefused(w, r, s, userActionReveal, err)
	}
	c.render(w, r, s, http.StatusOK, "user_keyshow", "page.user_key", userKeyData{Username: name, Key: out.APIKey})
	return nil
}

// userRotate: POST of the rotate page → POST /users/{name}/key/rotate.
// The old key fails from this moment; the new one is shown this once.
func (c *Console) userRotate(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := c.call(r, s, http.MethodPost, userDetailPath(name)+"/key/rotate", nil, nil, &out); err != nil {
		return c.userConfirmRefused(w, r, s, userActionRotate, err)
	}
	c.render(w, r, s, http.StatusOK, "user_keyshow", "page.user_new_key",
		userKeyData{Username: name, Key: out.APIKey, Rotated: true})
	return nil
}

// userDelete: POST of the delete page → DELETE /users/{name}, then the
// users list. 409 while requests are in flight: the page again, with the
// API's sentence.
func (c *Console) userDelete(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if err := c.call(r, s, http.MethodDelete, userDetailPath(name), nil, nil, nil); err != nil {
		return c.userConfirmRefused(w, r, s, userActionDelete, err)
	}
	c.redirect(w, r, s, "/users", c.localizerFor(r, s).T("user.deleted", name))
	return nil
}
