package metering

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// AuditFilter selects audit entries. Empty fields match everything; the
// time range is From inclusive, To exclusive.
type AuditFilter struct {
	Actor  string // token name
	User   string // target username
	From   *time.Time
	To     *time.Time
	Before *AuditCursor // the last entry of the previous page
}

// AuditCursor is a position in the newest-first audit list.
type AuditCursor struct {
	At time.Time
	ID int64
}

// String encodes the cursor opaquely: base64url of the time (Unix
// microseconds, Postgres's precision) and the id.
func (c AuditCursor) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.At.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseAuditCursor decodes what AuditCursor.String made.
func ParseAuditCursor(s string) (AuditCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return AuditCursor{}, invalid("cursor", "is not a cursor this API returned")
	}
	return AuditCursor{At: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		ID: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

// ListAudit returns up to limit entries, newest first, and the cursor of the
// next page (nil on the last).
func (e *Engine) ListAudit(ctx context.Context, f AuditFilter, limit int) ([]AuditEntry, *AuditCursor, error) {
	if limit < 1 {
		return nil, nil, invalid("limit", "must be positive")
	}
	entries, err := listAudit(ctx, e.db, f, limit+1)
	if err != nil {
		return nil, nil, fmt.Errorf("list audit: %w", err)
	}
	if len(entries) <= limit {
		return entries, nil, nil
	}
	entries = entries[:limit]
	last := entries[limit-1]
	return entries, &AuditCursor{At: last.At, ID: last.ID}, nil
}
