package metering

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

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

// StorageUnreachable reports an error of a connection to Postgres (or
// Redis) that could not be made, broke or timed out: the storage was
// away, which a later try may find back (503), not a fault of the request
// or of Tollgate (500). Most paths wrap such errors in ErrUnavailable;
// this catches the reads that pass pgx's own errors on.
func StorageUnreachable(err error) bool {
	var connect *pgconn.ConnectError
	var op *net.OpError
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// Class 08, connection exception; class 57, operator
		// intervention: the server shutting down (57P01, what a stopping
		// Postgres tells its sessions), crashing, or not yet accepting.
		return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "57")
	}
	return errors.As(err, &connect) || errors.As(err, &op) || pgconn.Timeout(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// InvalidError names the input field that was rejected.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string) error { return &InvalidError{Field: field, Message: format} }
