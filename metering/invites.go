package metering

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Invite links (issue 9): an admin creates a one-time invite for a user
// and sends its link instead of the API key; whoever opens it first gets
// a fresh key for that user, generated as RotateKey does. Postgres holds
// only each token's SHA-256 (store_invites.go, migration 009).
const (
	// DefaultInviteLifetime is how long an invite stays claimable when the
	// admin does not say.
	DefaultInviteLifetime = 7 * 24 * time.Hour
	// MaxInviteLifetime bounds how far ahead an invite may expire: a link
	// lying in a mailbox for longer is a key waiting to be found.
	MaxInviteLifetime = 90 * 24 * time.Hour
	// MaxPendingInvites bounds the pending invites of one user, so the
	// table and the listing cannot grow without end.
	MaxPendingInvites = 20
)

// Invite is a pending invite as an admin sees it: never its token.
type Invite struct {
	ID        string
	CreatedAt time.Time
	ExpiresAt time.Time
	CreatedBy string // the actor that created it
}

// inviteGone is the one answer to a claim that cannot be honoured, whatever
// the reason (unknown, claimed, revoked, expired, user deactivated or
// deleted): the caller holds a token and learns only that it is not valid.
func inviteGone() error {
	return refuse(ErrGone, "This invite link is not valid: it was used already, revoked or expired, or never existed.")
}

// CreateInvite creates a one-time invite for the user, claimable until
// expiresAt (in the future, at most MaxInviteLifetime ahead). It returns
// the invite and its token, which is shown this once and never stored,
// logged or audited. ErrConflict when the user is deactivated (the key
// a claim handed out would not work) or has MaxPendingInvites already.
func (e *Engine) CreateInvite(ctx context.Context, actor, username string, expiresAt time.Time) (Invite, string, error) {
	now := e.cfg.Now()
	// Postgres keeps microseconds: answer the time as it is stored.
	expiresAt = expiresAt.Truncate(time.Microsecond).UTC()
	if !expiresAt.After(now) {
		return Invite{}, "", invalid("expires_at", "must be in the future")
	}
	if expiresAt.Sub(now) > MaxInviteLifetime {
		return Invite{}, "", invalid("expires_at", "must be at most 90 days ahead")
	}
	token, digest, err := newInviteToken()
	if err != nil {
		return Invite{}, "", err
	}
	id, err := newInviteID()
	if err != nil {
		return Invite{}, "", err
	}
	inv := inviteRow{Invite: Invite{ID: id, CreatedAt: now.Truncate(time.Microsecond).UTC(), ExpiresAt: expiresAt, CreatedBy: actor}}
	err = pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		// Locked, so a deactivation cannot slip in between the check and the insert.
		u, err := lockUserByName(ctx, tx, username)
		if err != nil {
			return err
		}
		if !u.Active {
			return refuse(ErrConflict, "User %q is deactivated, so the key an invite hands out would not work; activate the user first.", username)
		}
		n, err := countPendingInvites(ctx, tx, u.ID, now)
		if err != nil {
			return err
		}
		if n >= MaxPendingInvites {
			return refuse(ErrConflict, "User %q already has %d pending invites, the most allowed; revoke one first.", username, n)
		}
		inv.UserID = u.ID
		if err := insertInvite(ctx, tx, inv, digest); err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.invite.create", Target: u.Username,
			Details: map[string]any{"invite_id": id, "expires_at": expiresAt}})
	})
	if err != nil {
		return Invite{}, "", err
	}
	return inv.Invite, token, nil
}

// ListInvites returns the user's pending invites (not claimed, revoked or
// expired), newest first.
func (e *Engine) ListInvites(ctx context.Context, username string) ([]Invite, error) {
	u, err := getUserByName(ctx, e.db, username)
	if err != nil {
		return nil, err
	}
	return listPendingInvites(ctx, e.db, u.ID, e.cfg.Now())
}

// RevokeInvite revokes the user's pending invite id; its link stops
// working. ErrNotFound when the user has no such pending invite.
func (e *Engine) RevokeInvite(ctx context.Context, actor, username, id string) error {
	now := e.cfg.Now()
	return pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		u, err := getUserByName(ctx, tx, username)
		if err != nil {
			return err
		}
		// An id of another shape is in no row: answer without quoting it.
		if !wellFormedInviteID(id) {
			return refuse(ErrNotFound, "User %q has no pending invite with that id.", username)
		}
		ok, err := revokePendingInvite(ctx, tx, u.ID, id, now)
		if err != nil {
			return err
		}
		if !ok {
			return refuse(ErrNotFound, "User %q has no pending invite with id %q.", username, id)
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.invite.revoke", Target: u.Username,
			Details: map[string]any{"invite_id": id}})
	})
}

// CheckInvite reports whether a claim of token would succeed now, without
// claiming it: the invite's expiry, or ErrGone as ClaimInvite answers it.
// The claim page uses it to show its button only for a live link.
func (e *Engine) CheckInvite(ctx context.Context, token string) (time.Time, error) {
	if !WellFormedInviteToken(token) {
		return time.Time{}, inviteGone()
	}
	expires, err := pendingInviteExpiry(ctx, e.db, inviteDigest(token), e.cfg.Now())
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, inviteGone()
	}
	return expires, err
}

// InviteActor is the actor a claim of invite id is audited under: the
// claimant has no token, and the invite is what vouches for it.
func InviteActor(id string) string { return "invite:" + id }

// ClaimInvite redeems an invite token: the invite's user gets a fresh key,
// generated as RotateKey does (the previous key fails from this moment),
// which is returned once. Each invite is claimed at most once. ErrGone,
// with one message for every reason, when the token is not claimable:
// unknown, claimed, revoked, expired, or its user deactivated (the key
// would not work; the invite stays pending for when the user is activated).
//
// Everything happens in one transaction, in this order: lock the user row
// (the order every other user change takes, so no deadlock with a delete
// or a rotation), mark the invite claimed only if it is still pending
// (conditional UPDATE ... RETURNING), store the new key, audit, mirror the
// user into Redis, commit. Of two concurrent claims the second waits on
// the user's lock and then finds the invite claimed. If anything fails,
// Redis included, the transaction rolls back with the claim in it, so the
// invite stays claimable and nothing is lost: no separate undo step that
// could itself fail. Should the commit alone fail after Redis took the new
// key, the invite stays claimable and the next claim replaces that key;
// the old key is refused either way.
func (e *Engine) ClaimInvite(ctx context.Context, token string) (username, apiKey string, err error) {
	if !WellFormedInviteToken(token) {
		return "", "", inviteGone()
	}
	digest, now := inviteDigest(token), e.cfg.Now()
	var dropped *KeyHash
	err = pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		userID, err := inviteUser(ctx, tx, digest)
		if err != nil {
			return err
		}
		u, err := lockUserByID(ctx, tx, userID)
		if err != nil {
			return err // a deleted user took its invites along: ErrNotFound
		}
		if !u.Active {
			return ErrNotFound
		}
		id, err := claimPendingInvite(ctx, tx, digest, u.ID, now)
		if err != nil {
			return err
		}
		dropped, err = e.changeLockedUser(ctx, tx, u, func(tx pgx.Tx, u User) (*KeyHash, error) {
			key, info, old, err := e.replaceKey(ctx, tx, u)
			if err != nil {
				return nil, err
			}
			username, apiKey = u.Username, key
			return old, insertAudit(ctx, tx, AuditEntry{Actor: InviteActor(id), Action: "user.invite.claim",
				Target: u.Username, Details: map[string]any{"invite_id": id, "key_prefix": info.Prefix}})
		})
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return "", "", inviteGone()
	}
	if err != nil {
		return "", "", err
	}
	if dropped != nil {
		e.cache.drop(*dropped)
	}
	return username, apiKey, nil
}
