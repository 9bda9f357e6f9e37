package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// UserSpec is what an admin gives to create a user.
type UserSpec struct {
	Username       string
	Project        string // "" for unassigned
	InitialCredits Credits
	Purchased      Credits
	MonthlyGrant   Credits
	Partner        bool
	KeyExpiresAt   *time.Time
}

func (s *UserSpec) validate(now time.Time) error {
	if problem := NameProblem(s.Username); problem != "" {
		return invalidName("username", "username", s.Username, problem)
	}
	if s.Project != "" && !ValidName(s.Project) {
		return invalid("project", "must be a project name or null")
	}
	for field, v := range map[string]Credits{"initial_credits": s.InitialCredits, "purchased": s.Purchased, "monthly_grant": s.MonthlyGrant} {
		if v < 0 || v > MaxCredits {
			return invalid(field, "must be between 0 and 9007199254.740991")
		}
	}
	if s.KeyExpiresAt != nil && !s.KeyExpiresAt.After(now) {
		return invalid("key_expires_at", "must be in the future")
	}
	return nil
}

// newKey makes a key and the record stored for it.
func (e *Engine) newKey(now time.Time, expires *time.Time) (string, APIKeyInfo, error) {
	key, err := NewAPIKey()
	if err != nil {
		return "", APIKeyInfo{}, err
	}
	info := APIKeyInfo{Hash: e.hasher.Hash(key), Prefix: KeyDisplayPrefix(key), CreatedAt: now, ExpiresAt: expires}
	if e.sealer != nil {
		if info.Sealed, err = e.sealer.Seal(key, info.Hash); err != nil {
			return "", APIKeyInfo{}, err
		}
	}
	return key, info, nil
}

// CreateUser stores a user with a new key, mirrors it into Redis, and
// records initial credits as adjustment events. The key is returned once.
func (e *Engine) CreateUser(ctx context.Context, actor string, spec UserSpec) (UserView, string, error) {
	now := e.cfg.Now()
	if err := spec.validate(now); err != nil {
		return UserView{}, "", err
	}
	key, info, err := e.newKey(now, spec.KeyExpiresAt)
	if err != nil {
		return UserView{}, "", err
	}
	err = pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		rec := User{Username: spec.Username, MonthlyGrant: spec.MonthlyGrant, Partner: spec.Partner}
		loc := time.UTC
		if spec.Project != "" {
			p, err := getProjectByName(ctx, tx, spec.Project)
			if errors.Is(err, ErrNotFound) {
				return invalid("project", fmt.Sprintf("There is no project named %q", spec.Project))
			}
			if err != nil {
				return err
			}
			rec.ProjectID = p.ID
			loc, _ = LoadLocation(p.TimeZone)
		}
		rec.GrantMonth = grantStartMonth(loc, now)
		id, err := insertUser(ctx, tx, rec)
		if err != nil {
			return err
		}
		if err := insertKey(ctx, tx, id, info); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.create", Target: spec.Username,
			Details: map[string]any{"project": spec.Project, "initial_credits": spec.InitialCredits,
				"purchased": spec.Purchased, "monthly_grant": spec.MonthlyGrant, "partner": spec.Partner,
				"key_prefix": info.Prefix}}); err != nil {
			return err
		}
		u, err := getUserByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if u.ProjectID != 0 {
			p, err := getProjectByID(ctx, tx, u.ProjectID)
			if err != nil {
				return err
			}
			if err := e.syncProjectToRedis(ctx, p); err != nil {
				return err
			}
		}
		return e.syncUserToRedis(ctx, u, nil)
	})
	if err != nil {
		return UserView{}, "", err
	}
	for _, c := range []struct {
		bucket Bucket
		amount Credits
	}{{BucketAwarded, spec.InitialCredits}, {BucketPurchased, spec.Purchased}} {
		if c.amount > 0 {
			if _, err := e.AdjustCredits(ctx, actor, spec.Username, c.bucket, c.amount, "initial credits"); err != nil {
				return UserView{}, "", fmt.Errorf("user %q created, but its initial %s credits were not: %w", spec.Username, c.bucket, err)
			}
		}
	}
	v, err := e.GetUser(ctx, spec.Username)
	return v, key, err
}

// GetUser returns the user with live balances.
func (e *Engine) GetUser(ctx context.Context, username string) (UserView, error) {
	u, err := getUserByName(ctx, e.db, username)
	if err != nil {
		return UserView{}, err
	}
	views, err := e.views(ctx, []User{u})
	if err != nil {
		return UserView{}, err
	}
	return views[0], nil
}

func (e *Engine) views(ctx context.Context, users []User) ([]UserView, error) {
	now := e.cfg.Now()
	bal, err := e.liveBalances(ctx, users, now)
	if err != nil {
		return nil, err
	}
	return e.viewsWith(ctx, users, bal, now)
}

// viewsWith is views for users whose live balances were read already, as
// of now.
func (e *Engine) viewsWith(ctx context.Context, users []User, bal []livePosition, now time.Time) ([]UserView, error) {
	flights, err := e.inFlight(ctx, users)
	if err != nil {
		return nil, err
	}
	out := make([]UserView, len(users))
	for i, u := range users {
		out[i] = UserView{User: u, Live: bal[i].Balances, LiveAt: now, HasUsage: u.LastActivityAt != nil,
			InFlight: flights[i], grantMonth: bal[i].grantMonth}
		if loc, err := LoadLocation(u.projectTZ); err == nil {
			out[i].NextGrantAt = nextGrantAt(&u, bal[i].grantMonth, loc, now)
		}
	}
	return out, nil
}

// inFlight counts each user's live in-flight requests, in one pipeline.
func (e *Engine) inFlight(ctx context.Context, users []User) ([]int64, error) {
	now := e.cfg.Now()
	calls := make([]*scriptCall, len(users))
	for i := range users {
		calls[i] = e.inFlightCall(users[i].ProjectID, users[i].ID, now)
	}
	defer func() {
		for _, c := range calls {
			putCall(c)
		}
	}()
	if err := e.runner.RunAll(ctx, calls); err != nil {
		return nil, err
	}
	out := make([]int64, len(users))
	for i, c := range calls {
		if c.Err != nil {
			return nil, c.Err
		}
		if len(c.Res) != 1 {
			return nil, fmt.Errorf("in-flight count answered %v", c.Res)
		}
		out[i] = c.Res[0]
	}
	return out, nil
}

// SetUserActive deactivates or reactivates a user. The key stops or starts
// working on the next request on every gateway; balances are kept.
func (e *Engine) SetUserActive(ctx context.Context, actor, username string, active bool) (UserView, error) {
	action := "user.deactivate"
	if active {
		action = "user.activate"
	}
	err := e.changeUser(ctx, username, func(tx pgx.Tx, u User) (*KeyHash, error) {
		if _, err := setUserStatus(ctx, tx, u.ID, active); err != nil {
			return nil, err
		}
		return nil, insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: action, Target: u.Username})
	})
	if err != nil {
		return UserView{}, err
	}
	return e.GetUser(ctx, username)
}

// RotateKey replaces the user's key; the old one fails from this moment.
// The new key is returned once and never logged or audited.
func (e *Engine) RotateKey(ctx context.Context, actor, username string) (string, error) {
	var key string
	err := e.changeUser(ctx, username, func(tx pgx.Tx, u User) (*KeyHash, error) {
		k, info, old, err := e.replaceKey(ctx, tx, u)
		if err != nil {
			return nil, err
		}
		key = k
		return old, insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "user.key.rotate", Target: u.Username,
			Details: map[string]any{"key_prefix": info.Prefix}})
	})
	return key, err
}

// replaceKey stores a new key for u, locked in tx, in place of its live
// one, keeping that one's expiry unless it has passed, and bumps the
// user's version so gateways drop what they cached. It returns the key,
// its record and the hash of the key it replaced (nil when u had none).
// Key rotation and invite claims share it; each audits in its own words.
func (e *Engine) replaceKey(ctx context.Context, tx pgx.Tx, u User) (string, APIKeyInfo, *KeyHash, error) {
	var expires *time.Time
	var old *KeyHash
	if u.Key != nil {
		expires, old = u.Key.ExpiresAt, &u.Key.Hash
		if expires != nil && !expires.After(e.cfg.Now()) {
			expires = nil // an expired key's successor would be dead on arrival
		}
	}
	key, info, err := e.newKey(e.cfg.Now(), expires)
	if err != nil {
		return "", APIKeyInfo{}, nil, err
	}
	if err := insertKey(ctx, tx, u.ID, info); err != nil {
		return "", APIKeyInfo{}, nil, err
	}
	if _, err := bumpUserVersion(ctx, tx, u.ID); err != nil {
		return "", APIKeyInfo{}, nil, err
	}
	return key, info, old, nil
}

// changeUser runs a config change in a transaction, locking the user row,
// then mirrors the new state into Redis before committing, so a change that
// Redis did not get is not committed either. change returns the key hash
// to drop from the key index, if any.
func (e *Engine) changeUser(ctx context.Context, username string, change func(pgx.Tx, User) (*KeyHash, error)) error {
	var dropped *KeyHash
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		u, err := lockUserByName(ctx, tx, username)
		if err != nil {
			return err
		}
		dropped, err = e.changeLockedUser(ctx, tx, u, change)
		return err
	})
	if err == nil && dropped != nil {
		e.cache.drop(*dropped)
	}
	return err
}

// changeLockedUser is changeUser's work inside tx, on a user whose row tx
// has locked: it runs change, then mirrors the user as changed into Redis.
// It returns the key hash change dropped; the caller drops it from the
// cache once tx has committed.
func (e *Engine) changeLockedUser(ctx context.Context, tx pgx.Tx, u User, change func(pgx.Tx, User) (*KeyHash, error)) (*KeyHash, error) {
	dropped, err := change(tx, u)
	if err != nil {
		return nil, err
	}
	if u, err = getUserByID(ctx, tx, u.ID); err != nil {
		return nil, err
	}
	if err := e.syncUserToRedis(ctx, u, dropped); err != nil {
		return nil, err
	}
	// Gateways stop admitting from leases taken under the old state
	// before this returns (a new lease sees the new state).
	return dropped, e.recall(ctx, 0, u.ID)
}
