package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// apiError is an error with its HTTP answer:
// {"error":{"code":...,"message":...,"field":...}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

// invalidArg is a 400 naming the rejected field ("" when none applies).
func invalidArg(field, message string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: field, Message: message}
}

// toAPIError maps an engine or request error to its HTTP answer. The
// metering errors' texts are written for admins (`user "ann": not found`)
// and are shown; anything unexpected gets a generic message.
func toAPIError(err error, write bool) (e *apiError, internal bool) {
	var ae *apiError
	var inv *metering.InvalidError
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.As(err, &inv):
		return invalidArg(inv.Field, inv.Message), false
	case errors.Is(err, metering.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}, false
	case errors.Is(err, metering.ErrInsufficient):
		return &apiError{Status: http.StatusConflict, Code: "conflict",
			Message: "the balance would go below zero (" + err.Error() + ")"}, false
	case errors.Is(err, metering.ErrRevealDisabled):
		return &apiError{Status: http.StatusConflict, Code: "reveal_disabled", Message: err.Error()}, false
	case errors.Is(err, metering.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}, false
	case errors.Is(err, metering.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		msg := "metering storage is unavailable; try again later"
		if write {
			// A money change may be applied in Redis and wait for the
			// reconciler: a blind retry could apply it twice.
			msg = "metering storage is unavailable; the change may already have been applied, check before retrying"
		}
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: msg}, true
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal",
		Message: "internal error; the details are in the server log"}, true
}

// writeError writes err as the JSON error body, logging the ones that are
// not the caller's fault. The log carries the method and path, never the
// headers or the body (tokens, keys).
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := toAPIError(err, !isRead(r.Method))
	if internal && !errors.Is(err, context.Canceled) {
		level := a.log.Error
		if e.Status == http.StatusServiceUnavailable {
			level = a.log.Warn
		}
		level("admin request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", e.Status), zap.Error(err))
	}
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// adjustError refines an engine error of a balance adjustment by delta: the
// engine answers ErrInsufficient both when the balance would go below zero
// and when it would pass MaxCredits. Only a positive delta can do the
// latter, and that is a 400 (out of range), not a 409.
func adjustError(err error, delta metering.Credits) error {
	if delta > 0 && errors.Is(err, metering.ErrInsufficient) {
		return invalidArg("delta", fmt.Sprintf("would take the balance above the maximum of %s credits", metering.MaxCredits))
	}
	return err
}
