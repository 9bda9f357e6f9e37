package metering

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// newer version, balances only where absent.
func loadCall(key string, version int64, config, balances []any) *scriptCall {
	c := getCall(loadScript)
	c.Keys = append(c.Keys, key)
	c.Args = append(c.Args, version, len(config)/2)
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
// none. Its key-index entry is indexUsers's to write, after.
func (e *Engine) userLoadCall(u *User) *scriptCall {
	return loadCall(e.keys.ShardOf(u.ProjectID, u.ID).User(u.ID), u.Version, userConfigArgs(*u), userBalanceArgs(*u))
}

// projectLoadCall is userLoadCall for a project, its pool included.
func (e *Engine) projectLoadCall(p Project) *scriptCall {
	return loadCall(e.keys.ProjectShard(p.ID).Project(p.ID), p.Version, projectConfigArgs(p),
		[]any{projectPool, int64(p.PoolBalance)})
}

// syncUserToRedis runs userLoadCall for one user, then points its key's
// index entry at it (oldKey's removed).
func (e *Engine) syncUserToRedis(ctx context.Context, u User, oldKey *KeyHash) error {
	if err := e.runLoad(ctx, e.userLoadCall(&u)); err != nil {
		return err
	}
	return unavailable(indexUsers(ctx, e.rdb, e.keys, []User{u}, oldKey))
}

// indexUsers writes the key-index entries of users' keys (and removes
// oldKey's), after their hashes were loaded: an entry never points at a
// user Redis does not have yet, and a stale one is harmless (the scripts
// check the key hash the user hash holds).
func indexUsers(ctx context.Context, rdb redis.UniversalClient, keys RedisKeys, users []User, oldKey *KeyHash) error {
	fields := make([]any, 0, 2*len(users))
	for i := range users {
		if k := users[i].Key; k != nil {
			fields = append(fields, string(k.Hash[:]), keys.indexValue(users[i].ID, users[i].ProjectID))
		}
	}
	if oldKey != nil {
		if err := rdb.HDel(ctx, keys.KeyIndex(), string(oldKey[:])).Err(); err != nil {
			return err
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return rdb.HSet(ctx, keys.KeyIndex(), fields...).Err()
}

// indexValue is a key-index entry's value: the user's id, and, with more
// than one shard, its project's after a slash when it has one, so a lookup
// knows the user's shard without asking Postgres. With one shard the
// value stays the bare id every version before shards wrote and reads.
func (k RedisKeys) indexValue(userID, projectID int64) string {
	v := strconv.FormatInt(userID, 10)
	if projectID != 0 && len(k.shards) > 1 {
		v += "/" + strconv.FormatInt(projectID, 10)
	}
	return v
}

// parseIndexValue reads indexValue's form (a bare user id: no project).
func parseIndexValue(v string) (userID, projectID int64, err error) {
	u, p, hasProject := strings.Cut(v, "/")
	if userID, err = strconv.ParseInt(u, 10, 64); err == nil && hasProject {
		projectID, err = strconv.ParseInt(p, 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("key index holds %q: %w", v, err)
	}
	return userID, projectID, nil
}

func (e *Engine) syncProjectToRedis(ctx context.Context, p Project) error {
	return e.runLoad(ctx, e.projectLoadCall(p))
}

// loadUser brings a user (and its project) from Postgres into Redis after
// Redis was found without it. It reports false when Postgres has no such
// user, and the user's project otherwise (which says its shard).
func (e *Engine) loadUser(ctx context.Context, id int64) (projectID int64, found bool, err error) {
	u, err := getUserByID(ctx, e.db, id)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load user from postgres: %w", err)
	}
	if u.ProjectID != 0 {
		if err := e.loadProject(ctx, u.ProjectID); err != nil {
			return 0, false, err
		}
	}
	return u.ProjectID, true, e.syncUserToRedis(ctx, u, nil)
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
	err := forEachLiveKey(ctx, e.db, func(h []byte, userID, projectID int64) error {
		batch = append(batch, string(h), e.keys.indexValue(userID, projectID))
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
	uid, indexedPID, err := parseIndexValue(uidStr)
	if err != nil {
		return nil, err
	}
	if len(e.keys.Shards()) > 1 && !strings.Contains(uidStr, "/") {
		// Written before the user had a project, or before shards: the
		// user's project, so its shard, is Postgres's to say.
		if indexedPID, err = userProjectID(ctx, e.db, uid); errors.Is(err, ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	sh := e.keys.ShardOf(indexedPID, uid)
	for attempt := 0; attempt < 3; attempt++ {
		f, err := e.rdb.HMGet(ctx, sh.User(uid), userKeyHash, userVersion, userProject, userName,
			userAllowance, userStatus, userKeyExpiry, userDeleted, userMovedOut).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		if f[7] != nil {
			if f[8] == nil {
				return nil, nil // deleted
			}
			// The user moved to a project in another shard (move_shards.go):
			// Postgres says which, once the move is committed.
			pid, err := userProjectID(ctx, e.db, uid)
			if errors.Is(err, ErrNotFound) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			if next := e.keys.ShardOf(pid, uid); next != sh {
				sh = next
				continue
			}
			return nil, fmt.Errorf("%w: user %d is moving to another Redis shard; try again", ErrUnavailable, uid)
		}
		if f[1] == nil || f[4] == nil {
			pid, found, err := e.loadUser(ctx, uid)
			if err != nil || !found {
				return nil, err
			}
			sh = e.keys.ShardOf(pid, uid) // the index may have been stale
			continue
		}
		if f[0] != string(h[:]) {
			return nil, nil // rotated or revoked; the index entry is stale
		}
		pid, _ := strconv.ParseInt(f[2].(string), 10, 64)
		if e.keys.ShardOf(pid, uid) != sh {
			// The user moved to a project in another shard: this hash is
			// the old shard's (a move leaves it retired) and the index
			// entry is stale.
			return nil, fmt.Errorf("%w: user %d is moving between shards; try again", ErrUnavailable, uid)
		}
		ent := &userEntry{userID: uid, userArg: strconv.FormatInt(uid, 10), keyArg: f[0].(string),
			shard: sh, userKey: sh.User(uid), flightKey: sh.InFlight(uid),
			versionArg: f[1].(string), username: f[3].(string), period: PeriodNone, loc: time.UTC}
		ent.active = f[5] == "1"
		if exp, ok := f[6].(string); ok {
			ent.expiresMs, _ = strconv.ParseInt(exp, 10, 64)
		}
		ent.projectKey = sh.Project(pid) // the script ignores it for pid 0
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
