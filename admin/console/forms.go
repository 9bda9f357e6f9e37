package console

import (
	"net/http"
	"net/url"
)

// maxFormBytes bounds a form without a file.
const maxFormBytes = 1 << 20

// formState carries a form back to its page after the API refused it:
// the API's sentence, the field it named, and what was typed, so that
// nothing has to be typed again.
type formState struct {
	Form    string // which form on the page failed (pages may have several)
	Message string
	Field   string
	Values  url.Values
}

// Value is what was typed into field.
func (f *formState) Value(field string) string {
	if f == nil {
		return ""
	}
	return f.Values.Get(field)
}

// For reports whether the failed form is form, for templates that show
// the error next to the right one.
func (f *formState) For(form string) bool { return f != nil && f.Form == form }

// refused turns an API refusal of form into a formState, for the page to
// render with status; any other error is returned for the error page.
func refused(err error, form string, r *http.Request) (*formState, int, error) {
	var ae *apiError
	if !asAPIError(err, &ae) || ae.Status >= 500 && ae.Status != http.StatusServiceUnavailable {
		return nil, 0, err
	}
	return &formState{Form: form, Message: ae.Message, Field: ae.Field, Values: r.PostForm}, ae.Status, nil
}

// credits puts a typed credits field into a JSON body when it is not empty.
func credits(body map[string]any, field, typed string) {
	if v, ok := formCredits(typed); ok {
		body[field] = v
	}
}
