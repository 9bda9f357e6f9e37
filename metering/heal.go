package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

// Healing a Redis that restarted (see fence.go for how a restart is
// noticed). Redis may have come back from an older state than it had:
// writes of its last second lost. Some of them may already be in the
// ledger (the reconciler copied their events), some only in Redis's lost
// stream. What reached the ledger is the truth that survives, so:
//
//  1. everything the restored stream holds is applied to the ledger
//     (idempotently, as the reconciler would), so the ledger holds every
//     change either side knows of;
//  2. every user and pool with a ledger event numbered after the
//     checkpoint Redis came back with (Tollgate raises {p}:ckpt after each
//     reconciled batch) gets its Redis balances overwritten from the
//     ledger: exactly the ones a lost write could have touched (all of
//     them when Redis lost everything);
//  3. configuration Redis lost (a deactivation, a key rotation, a project
//     change, a deletion) is written again where Redis holds an older
//     version, and users Postgres no longer has are retired;
//  4. reservations whose settlement is already in the ledger are removed,
//     so the sweeper does not settle them twice, and reservations whose
//     hold is in the ledger but which Redis lost are restored, so the
//     request is settled (by its gateway or the sweeper) rather than left
//     charged its estimate with nothing to settle;
//  5. the checkpoint and the server's run id are recorded, which lifts the
//     fence.
//
// The fence keeps every other Tollgate write away meanwhile, so nothing
// races the overwrite. Events Redis lost before the reconciler copied them
// are lost from both sides (their requests were served and not charged):
// appendfsync always avoids that, at a cost; see docs/architecture.md.

// healRetryAfter is how long callers fail fast after a failed verification
// before one tries again.
const healRetryAfter = time.Second

// healTimeout bounds one verification, heal included: draining a long
// backlog and reloading many users can take a while.
const healTimeout = 10 * time.Minute

// VerifyRedis makes sure the Redis server is one Tollgate has verified
// against the ledger, healing it first if it restarted. Safe to call at
// any time; cheap when nothing restarted. Engines call it themselves when
// a connection meets an unverified server.
//
// One verification runs at a time per client, in the background with its
// own deadline, so a long heal is not cut short by the request that found
// the fence; callers wait for it as long as their context allows.
func (e *Engine) VerifyRedis(ctx context.Context) error {
	f := e.cfg.Fence
	if f == nil {
		return nil
	}
	f.mu.Lock()
	done := f.verifying
	if done == nil {
		if f.lastErr != nil && time.Since(f.lastTry) < healRetryAfter {
			err := f.lastErr
			f.mu.Unlock()
			return err
		}
		done = make(chan struct{})
		f.verifying, f.lastTry, f.lastErr = done, time.Now(), nil
		go func() {
			vctx, cancel := context.WithTimeout(context.Background(), healTimeout)
			err := e.verifyRedis(vctx)
			cancel()
			f.mu.Lock()
			if err != nil {
				f.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
			} else {
				f.unverified.Store(false)
			}
			f.verifying = nil
			close(done)
			f.mu.Unlock()
		}()
	}
	f.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: Redis is being verified against the ledger: %w", ErrUnavailable, ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

func (e *Engine) verifyRedis(ctx context.Context) error {
	h, done := e.healer()
	defer done()
	return h.verify(ctx)
}

// healer is the engine seen through the healer's own Redis connections.
// They are its alone: while a server is unverified no other Tollgate work
// may reach it, and a connection from the shared pool could carry some
// (the fence checks connections only when they are made). healing is the
// set of shards a heal is about (heal.go's steps skip the others' users,
// projects and records).
type healer struct {
	*Engine
	rdb     redis.UniversalClient
	healing map[int]bool
}

// healer returns the engine with a Redis client of its own (the shared
// client's settings, without the fence's check), and a func to close it.
// NewEngine accepts a fence only over a client it can copy this way.
func (e *Engine) healer() (healer, func()) {
	// Without the fence's check, a small pool, and without the shared
	// client's push notification handlers, which go-redis refuses to
	// register twice.
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var rdb redis.UniversalClient
	if c, ok := e.rdb.(*redis.ClusterClient); ok {
		o := *c.Options()
		o.OnConnect, o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaintNotificationsConfig = nil, 4, 0, 4, noMaint
		rdb = redis.NewClusterClient(&o)
	} else {
		o := *e.rdb.(*redis.Client).Options()
		o.OnConnect, o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaintNotificationsConfig = nil, 4, 0, 4, noMaint
		rdb = redis.NewClient(&o)
	}
	return healer{Engine: e, rdb: rdb}, func() { rdb.Close() }
}

// shardState is a shard's server (its run id) and the run id the shard
// was last verified on.
type shardState struct {
	shard        *ShardKeys
	runID, epoch string
}

// unverifiedShards are the shards whose server is not the one they were
// last verified on.
func (h healer) unverifiedShards(ctx context.Context) ([]shardState, error) {
	var stale []shardState
	runIDs := map[string]string{} // server address → run id
	for _, sh := range h.keys.Shards() {
		node, addr, err := shardServer(ctx, h.rdb, &sh)
		if err != nil {
			return nil, err
		}
		runID, ok := runIDs[addr]
		if !ok {
			if runID, _, err = serverRunID(ctx, node); err != nil {
				return nil, err
			}
			runIDs[addr] = runID
		}
		epoch, err := verifiedRunID(ctx, h.rdb, &sh)
		if err != nil {
			return nil, err
		}
		if epoch != runID {
			stale = append(stale, shardState{shard: h.keys.Shard(sh.Index()), runID: runID, epoch: epoch})
		}
	}
	return stale, nil
}

// shardServer is the server holding a shard's keys (in a Redis Cluster,
// the master of its slot) and that server's address.
func shardServer(ctx context.Context, rdb redis.UniversalClient, sh *ShardKeys) (redis.Cmdable, string, error) {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		node, err := c.MasterForKey(ctx, sh.Epoch())
		if err != nil {
			return nil, "", err
		}
		return node, node.Options().Addr, nil
	}
	return rdb, "", nil
}

func (h healer) verify(ctx context.Context) error {
	layout, err := h.storedLayout(ctx)
	if err != nil {
		return err
	}
	stale, err := h.unverifiedShards(ctx)
	if err != nil || (len(stale) == 0 && layout == len(h.keys.Shards())) {
		return err
	}
	// One healer at a time across gateways: a Postgres advisory lock on a
	// connection held for the whole heal.
	conn, err := h.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("verify Redis: postgres: %w", err)
	}
	defer conn.Release()
	lock := `hashtextextended('tollgate.heal.' || $1, 0)`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lock+`)`, h.keys.Prefix()); err != nil {
		return fmt.Errorf("verify Redis: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+lock+`)`, h.keys.Prefix())
	if layout, err = h.storedLayout(ctx); err != nil {
		return err
	}
	if layout != len(h.keys.Shards()) {
		if err := h.migrateLayout(ctx, layout); err != nil {
			return fmt.Errorf("move Redis keys from %d shards to %d: %w", layout, len(h.keys.Shards()), err)
		}
	}
	if stale, err = h.unverifiedShards(ctx); err != nil {
		return err
	}
	if len(stale) == 0 {
		return h.recordLayout(ctx) // the shards were healed meanwhile by another gateway
	}
	// The shards are healed together, from the lowest of their
	// checkpoints: reloading from the ledger what a shard already had is
	// harmless, and one pass over the ledger serves them all.
	h.healing = map[int]bool{}
	ckpt, first, shards := int64(-1), true, make([]int, 0, len(stale))
	for _, s := range stale {
		c, err := h.rdb.Get(ctx, s.shard.Checkpoint()).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if ckpt < 0 || c < ckpt {
			ckpt = c
		}
		first = first && s.epoch == "" && c == 0
		h.healing[s.shard.Index()] = true
		shards = append(shards, s.shard.Index())
	}
	start := time.Now()
	// A deployment's first start verifies too: that is not news.
	logf := h.log.Warn
	if first {
		logf = h.log.Info
	}
	logf("Redis restarted (new run id): verifying it against the ledger before using it",
		zap.String("run_id", stale[0].runID), zap.String("verified_run_id", stale[0].epoch),
		zap.Int64("checkpoint", ckpt), zap.Ints("shards", shards))
	st, err := h.heal(ctx, ckpt)
	if err != nil {
		return fmt.Errorf("heal Redis: %w", err)
	}
	for _, s := range stale {
		if err := h.rdb.Set(ctx, s.shard.Epoch(), s.runID, 0).Err(); err != nil {
			return err
		}
	}
	if err := h.recordLayout(ctx); err != nil {
		return err
	}
	logf("Redis verified against the ledger", zap.Duration("took", time.Since(start)),
		zap.Int("events_applied", st.applied), zap.Int("users_reloaded", st.users),
		zap.Int("pools_reloaded", st.pools), zap.Int("configs_reloaded", st.configs),
		zap.Int("users_retired", st.retired), zap.Int("reservations_dropped", st.reservations),
		zap.Int("open_holds_checked", st.restored), zap.Int("credit_leases_dropped", st.leasesDropped),
		zap.Int("open_credit_leases_checked", st.leasesRestored))
	return nil
}

// heals reports whether the heal is about the shard of a user in project
// pid (0: none), or of project pid (uid 0).
func (h healer) heals(pid, uid int64) bool { return h.healing[h.keys.ShardOf(pid, uid).Index()] }

// healedShards are the shards the heal is about.
func (h healer) healedShards() []*ShardKeys {
	var out []*ShardKeys
	for i := range h.keys.Shards() {
		if h.healing[i] {
			out = append(out, h.keys.Shard(i))
		}
	}
	return out
}

// healStats is what a heal did, for the log.
type healStats struct {
	applied, users, pools, configs, retired, reservations, restored int
	leasesDropped, leasesRestored                                   int
}

var healBalancesScript = mustScript("heal_balances.lua")

func (h healer) heal(ctx context.Context, ckpt int64) (healStats, error) {
	var st healStats
	var err error
	if st.applied, err = h.drainStreamToLedger(ctx); err != nil {
		return st, err
	}
	var last int64
	if err := h.db.QueryRow(ctx, `SELECT last_value FROM events_seq`).Scan(&last); err != nil {
		return st, err
	}
	if st.configs, st.retired, err = h.reloadConfigs(ctx); err != nil {
		return st, err
	}
	if st.users, st.pools, err = h.reloadBalances(ctx, ckpt); err != nil {
		return st, err
	}
	if st.reservations, err = h.dropSettledReservations(ctx); err != nil {
		return st, err
	}
	if st.restored, err = h.restoreLostReservations(ctx, ckpt); err != nil {
		return st, err
	}
	if st.leasesDropped, err = h.dropEndedCreditLeases(ctx); err != nil {
		return st, err
	}
	if st.leasesRestored, err = h.restoreLostCreditLeases(ctx, ckpt); err != nil {
		return st, err
	}
	// A key created in the lost second may be missing from the index.
	if err := h.rdb.Del(ctx, h.keys.KeyIndexSynced()).Err(); err != nil {
		return st, err
	}
	for _, sh := range h.healedShards() {
		if err := raiseCheckpoint(ctx, h.rdb, sh, last); err != nil {
			return st, err
		}
	}
	return st, nil
}

// raiseCheckpoint records that a shard reflects every ledger event
// numbered up to seq; it never lowers the mark.
func raiseCheckpoint(ctx context.Context, rdb redis.UniversalClient, sh *ShardKeys, seq int64) error {
	return checkpointScript.Run(ctx, rdb, []string{sh.Checkpoint()}, seq).Err()
}

var checkpointScript = mustScript("checkpoint.lua")

// drainStreamToLedger applies every event in the stream to the ledger, as
// the reconciler does. It acknowledges nothing: the reconciler goes on as
// before, finds the entries already applied, and dead-letters the ones
// Postgres refused.
//
// It reads about 5,000 events at a time: as many entries as that is at the
// events per entry of the read before (packed entries hold many,
// event_pack.go), the first read sized for packed ones.
func (h healer) drainStreamToLedger(ctx context.Context) (int, error) {
	applied := 0
	for _, sh := range h.healedShards() {
		n, err := h.drainShardStream(ctx, sh)
		applied += n
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// drainShardStream is drainStreamToLedger for one shard's stream.
func (h healer) drainShardStream(ctx context.Context, sh *ShardKeys) (int, error) {
	const chunk = 5000
	applied, from, per := 0, "-", maxPackedEvents
	r := &shardReconciler{e: h.Engine, shard: sh, log: h.log}
	for {
		count := max(1, chunk/per)
		msgs, err := h.rdb.XRangeN(ctx, sh.Events(), from, "+", int64(count)).Result()
		if err != nil {
			return applied, err
		}
		sources, events, letters := decodeBatch(msgs)
		refused, _, err := r.store(ctx, sources, h.storableTexts(events))
		if err != nil {
			return applied, err
		}
		applied += len(events) - len(refused)
		if len(msgs) < count {
			return applied, nil
		}
		per = max(1, (len(events)+len(letters))/len(msgs))
		from = "(" + msgs[len(msgs)-1].ID
	}
}

// reloadConfigs writes users' and projects' configuration again where
// Redis holds an older version than Postgres, and retires users the key
// index still knows but Postgres no longer has (deleted in the lost
// second).
func (h healer) reloadConfigs(ctx context.Context) (reloaded, retired int, err error) {
	// versions reads every row's version (and project: its shard) from
	// Postgres, and returns them with the ids in the healed shards whose
	// Redis version is older.
	versions := func(sql string, key func(pid, id int64) string) (map[int64]int64, []int64, error) {
		rows, err := h.db.Query(ctx, sql)
		if err != nil {
			return nil, nil, err
		}
		pg := map[int64]int64{}
		var ids, pids []int64
		for rows.Next() {
			var id, v, pid int64
			if err := rows.Scan(&id, &v, &pid); err != nil {
				rows.Close()
				return nil, nil, err
			}
			pg[id] = v
			if h.heals(pid, id) {
				ids, pids = append(ids, id), append(pids, pid)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		var stale []int64
		for i := 0; i < len(ids); i += 1000 {
			batch := ids[i:min(i+1000, len(ids))]
			cmds := make([]*redis.StringCmd, len(batch))
			if _, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j, id := range batch {
					cmds[j] = p.HGet(ctx, key(pids[i+j], id), userVersion) // projectVersion is the same field
				}
				return nil
			}); err != nil && !errors.Is(err, redis.Nil) {
				return nil, nil, err
			}
			for j, id := range batch {
				v, err := cmds[j].Int64()
				if err == nil && v < pg[id] {
					stale = append(stale, id)
				}
			}
		}
		return pg, stale, nil
	}
	_, staleProjects, err := versions(`SELECT id, version, id FROM projects`,
		func(pid, id int64) string { return h.keys.ProjectShard(id).Project(id) })
	if err != nil {
		return 0, 0, err
	}
	for _, id := range staleProjects {
		if err := h.healLoadProject(ctx, id); err != nil {
			return reloaded, 0, err
		}
		reloaded++
	}
	users, staleUsers, err := versions(`SELECT id, version, coalesce(project_id, 0) FROM users`,
		func(pid, id int64) string { return h.keys.ShardOf(pid, id).User(id) })
	if err != nil {
		return reloaded, 0, err
	}
	for _, id := range staleUsers {
		u, err := getUserByID(ctx, h.db, id)
		if err != nil {
			return reloaded, 0, err
		}
		if err := h.healRun(ctx, h.userLoadCall(&u)); err != nil {
			return reloaded, 0, err
		}
		if err := indexUsers(ctx, h.rdb, h.keys, []User{u}, nil); err != nil {
			return reloaded, 0, err
		}
		reloaded++
	}
	// Users Redis knows by key but Postgres has no more (deleted in the
	// lost writes): gone from Redis too. No tombstone is needed, unlike a
	// live delete: the deletion is committed, so a cold load finds nothing
	// to bring back, and a user created meanwhile (its id is new) loads
	// from Postgres on its first request. Postgres no longer says which
	// project (shard) the user was in: every healed shard forgets it.
	index, err := h.rdb.HGetAll(ctx, h.keys.KeyIndex()).Result()
	if err != nil {
		return reloaded, 0, err
	}
	_, err = h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for hash, uidStr := range index {
			uid, _, err := parseIndexValue(uidStr)
			if err != nil || users[uid] != 0 {
				continue
			}
			for _, sh := range h.healedShards() {
				p.Del(ctx, sh.User(uid))
				p.Del(ctx, sh.InFlight(uid))
			}
			p.HDel(ctx, h.keys.KeyIndex(), hash)
			retired++
		}
		return nil
	})
	return reloaded, retired, err
}

// healLoadProject writes a project's Postgres state into Redis.
func (h healer) healLoadProject(ctx context.Context, id int64) error {
	p, err := getProjectByID(ctx, h.db, id)
	if err != nil {
		return err
	}
	return h.healRun(ctx, h.projectLoadCall(p))
}

// healRun sends one script call on the healer's own connections (the
// runner refuses to send while the fence is up) and returns it to the pool.
func (h healer) healRun(ctx context.Context, c *scriptCall) error {
	return h.healRunAll(ctx, []*scriptCall{c})
}

// healRunAll sends script calls in pipelines of a thousand, on the
// healer's connections, and returns them to the pool. The heal is
// idempotent, so any failure (a NOSCRIPT included) fails it, to be run
// again as a whole.
func (h healer) healRunAll(ctx context.Context, calls []*scriptCall) error {
	defer func() {
		for _, c := range calls {
			putCall(c)
		}
	}()
	loaded := map[*luaScript]bool{}
	for _, c := range calls {
		if !loaded[c.Script] {
			if err := c.Script.Load(ctx, h.rdb).Err(); err != nil {
				return err
			}
			loaded[c.Script] = true
		}
	}
	for i := 0; i < len(calls); i += 1000 {
		batch := calls[i:min(i+1000, len(calls))]
		cmds, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range batch {
				c.Script.EvalSha(ctx, p, c.Keys, c.Args...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// reloadBalances overwrites from the ledger the balances of every user and
// pool a lost write could have touched: those with an event numbered after
// the checkpoint, or all of them when Redis has no checkpoint.
func (h healer) reloadBalances(ctx context.Context, ckpt int64) (users, pools int, err error) {
	userSQL := `SELECT id, coalesce(project_id, 0), allowance_remaining, allowance_period, pool_used, awarded,
		purchased, grant_month, ` + parkedSQL + ` FROM users u`
	poolSQL := `SELECT id, pool_balance FROM projects`
	var args []any
	if ckpt > 0 {
		userSQL += ` WHERE id IN (SELECT DISTINCT user_id FROM events WHERE seq > $1 AND user_id IS NOT NULL)`
		poolSQL += ` WHERE id IN (SELECT DISTINCT project_id FROM events WHERE seq > $1 AND project_id IS NOT NULL)`
		args = []any{ckpt}
	}
	rows, err := h.db.Query(ctx, userSQL, args...)
	if err != nil {
		return 0, 0, err
	}
	var calls []*scriptCall
	for rows.Next() {
		var id, pid, a, ap, pu, aw, pr, gm int64
		var parked string
		if err := rows.Scan(&id, &pid, &a, &ap, &pu, &aw, &pr, &gm, &parked); err != nil {
			rows.Close()
			return 0, 0, err
		}
		if !h.heals(pid, id) {
			continue
		}
		c := getCall(healBalancesScript)
		c.Keys = append(c.Keys, h.keys.ShardOf(pid, id).User(id))
		c.Args = append(c.Args, userAllowance, a, userAllowanceStart, ap, userPoolUsed, pu, userAwarded, aw,
			userPurchased, pr, userGrantMonth, gm, userParked, parked)
		calls = append(calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	nUsers := len(calls)
	rows, err = h.db.Query(ctx, poolSQL, args...)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var id, pb int64
		if err := rows.Scan(&id, &pb); err != nil {
			rows.Close()
			return 0, 0, err
		}
		if !h.heals(id, 0) {
			continue
		}
		c := getCall(healBalancesScript)
		c.Keys = append(c.Keys, h.keys.ProjectShard(id).Project(id))
		c.Args = append(c.Args, projectPool, pb)
		calls = append(calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if err := h.healRunAll(ctx, calls); err != nil {
		return 0, 0, err
	}
	return nUsers, len(calls) - nUsers, nil
}

// dropSettledReservations removes reservations Redis restored although
// the ledger already holds their settlement (or their cancellation), so
// the sweeper does not settle them a second time.
func (h healer) dropSettledReservations(ctx context.Context) (int, error) {
	n := 0
	for _, sh := range h.healedShards() {
		d, err := h.dropFinished(ctx, sh.Leases(), ":s", sh.Reservation, sh.InFlight)
		n += d
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dropFinished removes the members of set (and their records, and their
// entries in the user's set) whose finishing event, the member's id with
// suffix, the ledger already holds: Redis came back with what ended them
// lost. Reservations (settled) and credit leases (ended) both use it.
func (h healer) dropFinished(ctx context.Context, set, suffix string, record func(string) string,
	userSet func(int64) string) (int, error) {
	ids, err := h.rdb.ZRange(ctx, set, 0, -1).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	finished := make([]string, len(ids))
	for i, id := range ids {
		finished[i] = id + suffix
	}
	rows, err := h.db.Query(ctx, `SELECT left(event_id, -length($2::text)), user_id FROM events WHERE event_id = ANY($1)`,
		finished, suffix)
	if err != nil {
		return 0, err
	}
	type done struct {
		id  string
		uid *int64
	}
	var drop []done
	for rows.Next() {
		var d done
		if err := rows.Scan(&d.id, &d.uid); err != nil {
			rows.Close()
			return 0, err
		}
		drop = append(drop, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	_, err = h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range drop {
			p.Del(ctx, record(d.id))
			p.ZRem(ctx, set, d.id)
			if d.uid != nil {
				p.ZRem(ctx, userSet(*d.uid), d.id)
			}
		}
		return nil
	})
	return len(drop), err
}

var restoreReservationScript = mustScript("restore_reservation.lua")

// restoredLease is the lease of a reservation a heal brought back.
const restoredLease = time.Minute

// restoreLostReservations recreates, from its hold event, each reservation
// the ledger has a hold for and no settlement, that Redis no longer has.
// The bucket order is not in the event: the buckets the hold took from,
// in the usual order, stand in for it (it only decides which bucket a
// partial refund reaches first). The allowance period is the user's
// current one in the ledger. The lease is short (restoredLease): the
// gateway still serving the request settles it or renews the lease (a
// stream) before then; otherwise its settlement was among the lost writes
// and the sweeper settles it by policy.
func (h healer) restoreLostReservations(ctx context.Context, ckpt int64) (int, error) {
	rows, err := h.db.Query(ctx, `SELECT h.event_id, h.user_id, coalesce(h.username, ''),
			coalesce(h.project_id, 0), coalesce(h.project_name, ''),
			h.d_allowance, h.d_pool, h.d_awarded, h.d_purchased, coalesce(h.reserved, 0),
			coalesce(h.model, ''), coalesce(h.request, ''), coalesce(u.allowance_period, -1)
		FROM events h LEFT JOIN users u ON u.id = h.user_id
		WHERE h.kind = 'hold' AND h.user_id IS NOT NULL AND ($1 = 0 OR h.seq > $1)
			AND NOT EXISTS (SELECT 1 FROM events s WHERE s.event_id = h.event_id || ':s')`, ckpt)
	if err != nil {
		return 0, err
	}
	deadline := h.cfg.Now().Add(restoredLease).UnixMilli()
	var calls []*scriptCall
	for rows.Next() {
		var id, un, pn, model, request string
		var uid, pid, a, p, w, r, reserved, ap int64
		if err := rows.Scan(&id, &uid, &un, &pid, &pn, &a, &p, &w, &r, &reserved, &model, &request, &ap); err != nil {
			rows.Close()
			return 0, err
		}
		order := ""
		for _, b := range []struct {
			letter string
			taken  int64
		}{{"a", a}, {"p", p}, {"w", w}, {"r", r}} {
			if b.taken != 0 {
				order += b.letter
			}
		}
		if order == "" {
			order = "apwr"
		}
		if !h.heals(pid, uid) {
			continue
		}
		sh := h.keys.ShardOf(pid, uid)
		c := getCall(restoreReservationScript)
		c.Keys = append(c.Keys, sh.Reservation(id), sh.Leases(), sh.InFlight(uid))
		c.Args = append(c.Args, id, deadline, reservationUser, uid, reservationProject, pid,
			reservationUserName, un, reservationProjectName, pn, reservationAllowanceStart, ap,
			reservationAllowanceEnd, 0, reservationOrder, order, reservationReserved, reserved,
			reservationAllowance, 0-a, reservationPool, 0-p, reservationAwarded, 0-w, reservationPurchased, 0-r,
			reservationModel, model, reservationRequest, request)
		calls = append(calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := len(calls)
	return n, h.healRunAll(ctx, calls)
}
