package console

import "net/http"

// projectDeleteData is the confirmation page's: the project, and the
// API's refusal when deleting failed (users still assigned).
type projectDeleteData struct {
	Project apiProject
	Form    *formState
}

// projectDeleteConfirm asks before deleting: GET shows the question, its
// form posts. Viewers get no question they could not answer.
func (c *Console) projectDeleteConfirm(w http.ResponseWriter, r *http.Request, s *session) error {
	if !s.canWrite() {
		c.renderError(w, r, s, http.StatusForbidden, "error.viewer")
		return nil
	}
	return c.renderProjectDelete(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderProjectDelete(w http.ResponseWriter, r *http.Request, s *session, status int, form *formState) error {
	var p apiProject
	if err := c.call(r, s, http.MethodGet, "/projects/"+pathSegment(r.PathValue("name")), nil, nil, &p); err != nil {
		return err
	}
	c.render(w, r, s, status, "project_delete", "page.project_delete", projectDeleteData{Project: p, Form: form})
	return nil
}

// projectDelete → DELETE /projects/{name}; a 409 (users still assigned)
// shows the question again with the API's sentence.
func (c *Console) projectDelete(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	if err := c.call(r, s, http.MethodDelete, "/projects/"+pathSegment(name), nil, nil, nil); err != nil {
		form, status, refusal := refused(err, "delete", r)
		if refusal != nil || status == http.StatusNotFound {
			return err // gone meanwhile, or worse: the error page says so
		}
		return c.renderProjectDelete(w, r, s, status, form)
	}
	c.redirect(w, r, s, "/projects", c.localizerFor(r, s).T("project.deleted", name))
	return nil
}
