package metering

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// SweepPolicy says what the sweeper does with a reservation whose gateway
// never settled it.
type SweepPolicy string

const (
	// SweepCharge charges the estimate: the request most likely ran.
	SweepCharge SweepPolicy = "charge"
	// SweepRefund gives the estimate back.
	SweepRefund SweepPolicy = "refund"
)

// SweeperConfig configures a Sweeper.
type SweeperConfig struct {
	// Interval between sweeps. Default 30s.
	Interval time.Duration
	// Policy for expired reservations. Default SweepCharge.
	Policy SweepPolicy
	// Batch is how many expired leases one round reads. Default 100.
	Batch int
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c SweeperConfig) WithDefaults() SweeperConfig {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Policy == "" {
		c.Policy = SweepCharge
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	return c
}

func (c SweeperConfig) validate() error {
	if c.Interval < 0 {
		return invalid("interval", "must be positive")
	}
	if c.Policy != SweepCharge && c.Policy != SweepRefund {
		return invalid("policy", `must be "charge" or "refund"`)
	}
	if c.Batch < 1 || c.Batch > 10000 {
		return invalid("batch", "must be 1..10000")
	}
	return nil
}

// Sweeper settles reservations whose lease ran out (their gateway died or
// lost Redis mid-request). Any number may run: a Postgres advisory lock,
// named after the deployment's Redis prefix, lets one work at a time, so a
// config reload's twin or a second gateway only waits its turn; settling
// is idempotent besides.
type Sweeper struct {
	e       *Engine
	cfg     SweeperConfig
	lockKey int64
	bg      background
}

// NewSweeper checks the config and builds a sweeper; Start runs it.
func (e *Engine) NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("tollgate sweeper " + e.keys.tag))
	return &Sweeper{e: e, cfg: cfg, lockKey: int64(h.Sum64())}, nil
}

// LockKey is the Postgres advisory lock the sweepers of this deployment
// share (pg_locks shows who sweeps).
func (s *Sweeper) LockKey() int64 { return s.lockKey }

// Start runs a sweep every Interval until Stop or ctx ends. Starting a
// running sweeper does nothing; Start after Stop (or after ctx ended)
// runs it again (background.go).
func (s *Sweeper) Start(ctx context.Context) error {
	s.bg.start(ctx, s.loop)
	return nil
}

// Stop ends the loop and waits for a sweep in progress. Idempotent, a
// no-op before Start, and safe to call concurrently: every call returns
// once the loop has.
func (s *Sweeper) Stop() { s.bg.stop() }

func (s *Sweeper) loop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.RunOnce(ctx)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			s.e.cfg.Metrics.add(SweeperFailures, 1)
			s.e.log.Warn("lease sweep failed", zap.Error(err))
		case n > 0:
			s.e.log.Info("settled expired reservations", zap.Int("settled", n), zap.String("policy", string(s.cfg.Policy)))
		}
	}
}

// RunOnce settles every reservation whose lease has passed and ends every
// credit lease past its deadline (lease_sweep.go), if no other sweeper of
// this deployment is at work, and returns how many it settled and ended.
func (s *Sweeper) RunOnce(ctx context.Context) (int, error) {
	// The lock belongs to a session: the connection is held for the sweep.
	conn, err := s.e.db.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweeper: %w", err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, s.lockKey).Scan(&locked); err != nil || !locked {
		conn.Release()
		return 0, err
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, s.lockKey); err != nil {
			// A connection that may still hold the lock must not go back.
			_ = conn.Hijack().Close(context.Background())
			return
		}
		conn.Release()
	}()
	s.e.cfg.Metrics.add(SweeperRuns, 1)
	settled := 0
	for _, sweep := range []func(context.Context, *ShardKeys) (int, bool, error){s.sweepBatch, s.sweepCreditLeases} {
		for i := range s.e.keys.Shards() {
			for {
				n, more, err := sweep(ctx, s.e.keys.Shard(i))
				settled += n
				if err != nil {
					return settled, err
				}
				if !more {
					break
				}
			}
		}
	}
	if _, err := s.e.finishPendingMoves(ctx); err != nil {
		return settled, fmt.Errorf("finish moves between shards: %w", err)
	}
	if _, err := s.e.finishPendingTransfers(ctx); err != nil {
		return settled, fmt.Errorf("finish transfers between shards: %w", err)
	}
	return settled, nil
}

// sweepBatch settles up to Batch expired reservations of a shard; more
// reports that the batch was full.
func (s *Sweeper) sweepBatch(ctx context.Context, sh *ShardKeys) (settled int, more bool, err error) {
	e := s.e
	cost, note := int64(-1), "lease expired: charged the estimate"
	if s.cfg.Policy == SweepRefund {
		cost, note = 0, "lease expired: refunded"
	}
	return s.sweepExpired(ctx, sh.Leases(), sh.Reservation, func(id string, uid, pid int64) (bool, error) {
		res, err := e.settle(ctx, settleArgs{id: id, userID: uid, projectID: pid, shard: sh,
			userKey: sh.User(uid), projectKey: sh.Project(pid), flightKey: sh.InFlight(uid),
			cost: cost, status: -1, note: note})
		swept := err == nil && !res.AlreadySettled
		if swept {
			e.cfg.Metrics.add(ReservationsSwept, 1)
		}
		return swept, err
	})
}

// sweepExpired runs end for up to Batch members of set whose deadline
// (their score) has passed, with the user and project their record names
// (reservations and credit leases both record them as "u" and "p"). end
// reports whether it ended anything; more reports a full batch.
func (s *Sweeper) sweepExpired(ctx context.Context, set string, record func(string) string,
	end func(id string, uid, pid int64) (bool, error)) (ended int, more bool, err error) {
	e := s.e
	now := e.cfg.Now().UnixMilli()
	ids, err := e.rdb.ZRangeByScore(ctx, set, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now, 10), Count: int64(s.cfg.Batch)}).Result()
	if err != nil {
		return 0, false, unavailable(err)
	}
	for _, id := range ids {
		f, err := e.rdb.HMGet(ctx, record(id), reservationUser, reservationProject).Result()
		if err != nil {
			return ended, false, unavailable(err)
		}
		if f[0] == nil {
			// Ended between the two reads, or a member without its record.
			e.rdb.ZRem(ctx, set, id)
			continue
		}
		uid, err1 := strconv.ParseInt(f[0].(string), 10, 64)
		pid, err2 := strconv.ParseInt(f[1].(string), 10, 64)
		if err1 != nil || err2 != nil {
			return ended, false, fmt.Errorf("%s: bad user or project %v", record(id), f)
		}
		done, err := end(id, uid, pid)
		if err != nil {
			return ended, false, err
		}
		if done {
			ended++
		}
	}
	return ended, len(ids) == s.cfg.Batch, nil
}
