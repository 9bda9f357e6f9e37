package metering

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// userConfigArgs returns the config field/value pairs of a user hash.
func userConfigArgs(u User) []any {
	kh, exp := "", int64(0)
	if u.Key != nil {
		kh, exp = string(u.Key.Hash[:]), expiresMillis(u.Key.ExpiresAt)
	}
	return []any{userKeyHash, kh, userStatus, flag(u.Active), userKeyExpiry, exp, userProject, u.ProjectID,
		userName, u.Username, userMonthlyGrant, int64(u.MonthlyGrant), userPartner, flag(u.Partner)}
}

// userBalanceArgs are written only when Redis has no balances for the user
// yet. 'x' is present in every hash written since moves park allowances
// (patch_user.lua writes it with the move's events), so an absent 'x' never
// hides an entry Postgres has.
func userBalanceArgs(u User) []any {
	return []any{userAllowance, int64(u.AllowanceRemaining), userAllowanceStart, u.AllowancePeriod,
		userPoolUsed, int64(u.PoolUsed), userAwarded, int64(u.Awarded), userPurchased, int64(u.Purchased),
		userGrantMonth, u.GrantMonth, userParked, u.parked}
}

func projectConfigArgs(p Project) []any {
	pe, pl := "0", int64(-1)
	if p.PoolEnabled {
		pe = "1"
	}
	if p.PoolPerUserLimit != nil {
		pl = int64(*p.PoolPerUserLimit)
	}
	return []any{projectName, p.Name, projectAmount, int64(p.AllowanceAmount), projectPeriod, string(p.Period),
		projectPoolEnabled, pe, projectPoolLimit, pl, projectTimeZone, p.TimeZone}
}

// loadCall builds a load.lua call: config written unless Redis holds a
// newer version, balances only where absent, and optional key-index
// changes (indexAdd → indexUser added, indexDel removed; "" for none).
func (e *Engine) loadCall(key string, version int64, config, balances []any, indexAdd string, indexUser int64, indexDel string) *scriptCall {
	c := getCall(loadScript)
	c.Keys = append(c.Keys, key, e.keys.KeyIndex())
	c.Args = append(c.Args, version, indexAdd, indexUser, indexDel, len(config)/2)
	c.Args = append(c.Args, config...)
	c.Args = append(c.Args, balances...)
	return c
}

// runLoad sends one load.lua call and gives the call back to the pool.
func (e *Engine) runLoad(ctx context.Context, c *scriptCall) error {
	defer putCall(c)
	if err := e.runner.Run(ctx, c); err != nil {
		return unavailable(err)
	}
	return c.Err
}

// userLoadCall builds the load.lua call that writes a user's Postgres
// state into Redis: config (if not older), balances only if Redis has
// none, and its key-index entry (oldKey's removed).
func (e *Engine) userLoadCall(u *User, oldKey *KeyHash) *scriptCall {
	add, del := "", ""
	if u.Key != nil {
		add = string(u.Key.Hash[:])
	}
	if oldKey != nil {
		del = string(oldKey[:])
	}
	return e.loadCall(e.keys.User(u.ID), u.Version, userConfigArgs(*u), userBalanceArgs(*u), add, u.ID, del)
}

// syncUserToRedis runs userLoadCall for one user.
func (e *Engine) syncUserToRedis(ctx context.Context, u User, oldKey *KeyHash) error {
	return e.runLoad(ctx, e.userLoadCall(&u, oldKey))
}

func (e *Engine) syncProjectToRedis(ctx context.Context, p Project) error {
	return e.runLoad(ctx, e.loadCall(e.keys.Project(p.ID), p.Version, projectConfigArgs(p),
		[]any{projectPool, int64(p.PoolBalance)}, "", 0, ""))
}

// loadUser brings a user (and its project) from Postgres into Redis after
// Redis was found without it. It reports false when Postgres has no such user.
func (e *Engine) loadUser(ctx context.Context, id int64) (bool, error) {
	u, err := getUserByID(ctx, e.db, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load user from postgres: %w", err)
	}
	if u.ProjectID != 0 {
		if err := e.loadProject(ctx, u.ProjectID); err != nil {
			return false, err
		}
	}
	return true, e.syncUserToRedis(ctx, u, nil)
}

func (e *Engine) loadProject(ctx context.Context, id int64) error {
	p, err := getProjectByID(ctx, e.db, id)
	if err != nil {
		return fmt.Errorf("load project from postgres: %w", err)
	}
	return e.syncProjectToRedis(ctx, p)
}

// syncKeyIndex copies every live key hash from Postgres into the Redis key
// index and marks it complete for KeyIndexSyncTTL. Until the mark expires, a
// key missing from the index is unknown without asking Postgres. Entries are
// only added: a stale one is harmless because the charge script checks the
// user's current key hash, and rotation removes the old entry itself.
func (e *Engine) syncKeyIndex(ctx context.Context) error {
	e.keySync.Lock()
	defer e.keySync.Unlock()
	if n, err := e.rdb.Exists(ctx, e.keys.KeyIndexSynced()).Result(); err != nil || n == 1 {
		return unavailable(err)
	}
	batch := make([]any, 0, 2000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := e.rdb.HSet(ctx, e.keys.KeyIndex(), batch...).Err()
		batch = batch[:0]
		return unavailable(err)
	}
	err := forEachLiveKey(ctx, e.db, func(h []byte, userID int64) error {
		batch = append(batch, string(h), strconv.FormatInt(userID, 10))
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("sync key index: %w", err)
	}
	return unavailable(e.rdb.Set(ctx, e.keys.KeyIndexSynced(), 1, e.cfg.KeyIndexSyncTTL).Err())
}

// resolve finds the cached entry for a key hash, building it from Redis (and
// Postgres when Redis is cold) on a miss. nil, nil means the key is unknown.
func (e *Engine) resolve(ctx context.Context, h KeyHash) (*userEntry, error) {
	now := e.cfg.Now()
	if ent, negative := e.cache.get(h, now); ent != nil || negative {
		return ent, nil
	}
	ent, err := e.lookup(ctx, h)
	if isFenced(err) {
		// A new connection met a Redis that restarted: verify it (the
		// runner would too) and look again.
		if err := e.VerifyRedis(ctx); err != nil {
			return nil, err
		}
		ent, err = e.lookup(ctx, h)
	}
	if err != nil {
		return nil, err
	}
	if ent == nil {
		e.cache.putUnknown(h, now)
		return nil, nil
	}
	e.cache.put(h, ent)
	return ent, nil
}

func (e *Engine) lookup(ctx context.Context, h KeyHash) (*userEntry, error) {
	uidStr, err := e.rdb.HGet(ctx, e.keys.KeyIndex(), string(h[:])).Result()
	if errors.Is(err, redis.Nil) {
		// Not := here: the HGet after the sync must set the outer err,
		// or a key the sync found would read as unknown.
		synced, xerr := e.rdb.Exists(ctx, e.keys.KeyIndexSynced()).Result()
		if xerr != nil {
			return nil, unavailable(xerr)
		}
		if synced == 1 {
			return nil, nil
		}
		if err := e.syncKeyIndex(ctx); err != nil {
			return nil, err
		}
		uidStr, err = e.rdb.HGet(ctx, e.keys.KeyIndex(), string(h[:])).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	uid, err := strconv.ParseInt(uidStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("key index holds %q: %w", uidStr, err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		f, err := e.rdb.HMGet(ctx, e.keys.User(uid), userKeyHash, userVersion, userProject, userName,
			userAllowance, userStatus, userKeyExpiry).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		if f[1] == nil || f[4] == nil {
			found, err := e.loadUser(ctx, uid)
			if err != nil || !found {
				return nil, err
			}
			continue
		}
		if f[0] != string(h[:]) {
			return nil, nil // rotated or revoked; the index entry is stale
		}
		ent := &userEntry{userID: uid, userArg: uidStr, keyArg: f[0].(string), userKey: e.keys.User(uid), flightKey: e.keys.InFlight(uid),
			versionArg: f[1].(string), username: f[3].(string), period: PeriodNone, loc: time.UTC}
		ent.active = f[5] == "1"
		if exp, ok := f[6].(string); ok {
			ent.expiresMs, _ = strconv.ParseInt(exp, 10, 64)
		}
		pid, _ := strconv.ParseInt(f[2].(string), 10, 64)
		ent.projectKey = e.keys.Project(pid) // the script ignores it for pid 0
		if pid != 0 {
			if err := e.resolveProject(ctx, ent, pid); err != nil {
				return nil, err
			}
		}
		return ent, nil
	}
	return nil, fmt.Errorf("user %d: not in Redis after loading", uid)
}

func (e *Engine) resolveProject(ctx context.Context, ent *userEntry, pid int64) error {
	for attempt := 0; attempt < 2; attempt++ {
		f, err := e.rdb.HMGet(ctx, ent.projectKey, projectVersion, projectName, projectPeriod,
			projectTimeZone, projectPool).Result()
		if err != nil {
			return unavailable(err)
		}
		if f[0] == nil || f[4] == nil {
			if err := e.loadProject(ctx, pid); err != nil {
				return err
			}
			continue
		}
		loc, err := LoadLocation(f[3].(string))
		if err != nil {
			return fmt.Errorf("project %d: %w", pid, err)
		}
		ent.projectID, ent.projectVer, ent.project = pid, f[0].(string), f[1].(string)
		ent.period, ent.loc = Period(f[2].(string)), loc
		return nil
	}
	return fmt.Errorf("project %d: not in Redis after loading", pid)
}
