package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// apiError is an error with its HTTP answer:
// {"error":{"code":...,"message":...,"field":...}}. Message is written
// either as a whole sentence or, for an error about a field, as a
// predicate of it ("must be positive"); the answer always carries a
// sentence (see sentence).
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *apiError) Error() string { return e.Code + ": " + sentence(e.Field, e.Message) }

// MarshalJSON writes the error object with its message as a sentence.
func (e *apiError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	}{e.Code, sentence(e.Field, e.Message), e.Field})
}

// sentence is the message of an answer: see metering.Sentence.
func sentence(field, msg string) string { return metering.Sentence(field, msg) }

// invalidArg is a 400 naming the rejected field ("" when none applies).
func invalidArg(field, message string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: field, Message: message}
}

// toAPIError maps an engine or request error to its HTTP answer. The
// engine's refusals are sentences written for admins
// (`There is no user named "ann".`) and are shown; anything unexpected
// gets a generic message.
func toAPIError(err error, write bool) (e *apiError, internal bool) {
	var ae *apiError
	var inv *metering.InvalidError
	refused := func(status int, code string) (*apiError, bool) {
		return &apiError{Status: status, Code: code, Message: refusalMessage(err)}, false
	}
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.As(err, &inv):
		return invalidArg(inv.Field, inv.Message), false
	case errors.Is(err, metering.ErrNotFound):
		return refused(http.StatusNotFound, "not_found")
	case errors.Is(err, metering.ErrInsufficient):
		return refused(http.StatusConflict, "conflict")
	case errors.Is(err, metering.ErrRevealDisabled):
		return refused(http.StatusConflict, "reveal_disabled")
	case errors.Is(err, metering.ErrConflict):
		return refused(http.StatusConflict, "conflict")
	case errors.Is(err, metering.ErrGone):
		return refused(http.StatusGone, "gone")
	case errors.Is(err, metering.ErrUnavailable), metering.StorageUnreachable(err),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
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

// refusalMessage is the sentence of the engine's refusal in err. An error
// that carries none (wrapped with %w the plain way) shows its text without
// the kind's name that %w put at its end or start.
func refusalMessage(err error) string {
	var r *metering.Refusal
	if errors.As(err, &r) {
		return r.Message
	}
	msg := err.Error()
	for _, kind := range []error{metering.ErrNotFound, metering.ErrConflict, metering.ErrInsufficient, metering.ErrRevealDisabled, metering.ErrGone} {
		msg = strings.TrimSuffix(msg, ": "+kind.Error())
		msg = strings.TrimPrefix(msg, kind.Error()+": ")
	}
	return msg
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
