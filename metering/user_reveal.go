package metering

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrRevealDisabled: keys cannot be revealed because no key-encryption key
// is configured (or the key was made while none was).
var ErrRevealDisabled = errors.New("key reveal is disabled")

// RevealKey decrypts the user's live key. Every reveal is audited, by key
// prefix only; the key itself goes nowhere but the answer. The audit entry
// is committed before the key is returned, so no reveal goes unrecorded.
func (e *Engine) RevealKey(ctx context.Context, actor, username string) (string, error) {
	if e.sealer == nil {
		return "", refuse(ErrRevealDisabled, "Keys cannot be revealed: no key_encryption_key is configured.")
	}
	var key string
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		u, err := getUserByName(ctx, tx, username)
		if err != nil {
			return err
		}
		if u.Key == nil {
			return refuse(ErrNotFound, "User %q has no live key.", username)
		}
		if len(u.Key.Sealed) == 0 {
			return refuse(ErrRevealDisabled, "The key of %q was made while no key_encryption_key was configured; rotate it to make a revealable one.",
				username)
		}
		if key, err = e.sealer.Open(u.Key.Sealed, u.Key.Hash); err != nil {
			return fmt.Errorf("reveal key of %q: %w", username, err)
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.key.reveal", Target: u.Username,
			Details: map[string]any{"key_prefix": u.Key.Prefix}})
	})
	if err != nil {
		return "", err
	}
	return key, nil
}
