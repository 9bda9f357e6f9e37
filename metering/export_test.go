package metering

import "context"

// Hooks for the external tests: the admin operations as they run after
// reading a user from Postgres, so a test can delete the user in between.

// UserRowForTest reads a user's row as the admin operations do.
func (e *Engine) UserRowForTest(ctx context.Context, name string) (User, error) {
	return getUserByName(ctx, e.db, name)
}

// AdjustAsRead adds delta to the awarded credits of u as read earlier.
func (e *Engine) AdjustAsRead(ctx context.Context, u User, delta Credits) error {
	return e.adjust(ctx, adjustment{user: &u, field: "aw", delta: delta, kind: KindAdjust, actor: "test",
		audit: AuditEntry{Actor: "test", Action: "user.credits", Target: u.Username}})
}

// TransferAsRead moves awarded credits between two users as read earlier.
func (e *Engine) TransferAsRead(ctx context.Context, src, dst User, amount Credits) error {
	return e.transfer(ctx, "test", src, dst, amount, "")
}
