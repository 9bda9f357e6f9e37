package metering

import (
	"errors"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// Errors the admin layer maps to HTTP statuses.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrInsufficient = errors.New("insufficient balance")
	ErrUnavailable  = scriptrun.ErrUnavailable
	// ErrGone: what was asked for existed once, or might have, and is no
	// longer usable (an invite link claimed, revoked or expired).
	ErrGone = errors.New("gone")
	// ErrOutcomeUnknown wraps a Redis error after which a script may or
	// may not have run (its answer was lost to a timeout or a broken
	// connection). Always together with ErrUnavailable.
	ErrOutcomeUnknown = scriptrun.ErrOutcomeUnknown
)

// InvalidError names the input field that was rejected.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string) error { return &InvalidError{Field: field, Message: format} }
