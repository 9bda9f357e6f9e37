package caddymodule

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

// stores holds connections and reconcilers across config reloads, keyed by
// Redis URL, Postgres URL and key prefix.
var stores = caddy.NewUsagePool()

type sharedStores struct {
	rdb        redis.UniversalClient
	fence      *metering.RedisFence // checks every new Redis connection
	db         *pgxpool.Pool
	engine     *metering.Engine // for the reconciler only
	reconciler *metering.Reconciler
	once       sync.Once
	startErr   error

	// migrateOnce applies the migrations at the first start that asks
	// for them; stop ends a retry loop left running by a failed attempt.
	migrateOnce sync.Once
	stop        chan struct{}
	migrating   sync.WaitGroup
}

func openStores(redisURL, pgURL string, cfg metering.Config, rcfg metering.ReconcilerConfig, log *zap.Logger) (*sharedStores, error) {
	rconn, err := parseRedisURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return nil, fmt.Errorf("postgres URL: %w", err)
	}
	// Every new connection checks that Redis did not restart without
	// being verified against the ledger (metering/fence.go), for every
	// shard the engines write.
	fence, err := metering.NewRedisFence(cfg.RedisPrefix, cfg.RedisShards)
	if err != nil {
		return nil, err
	}
	cfg.Fence = fence
	// Charges are pipelined by the engine, so a modest pool suffices, plus
	// one connection per shard: each shard's reconciler loop holds one
	// while it waits for new events (XREADGROUP BLOCK).
	rdb := rconn.client(32+max(cfg.RedisShards, 1), fence.OnConnect)
	db, err := pgxpool.NewWithConfig(context.Background(), pcfg) // connects lazily
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &sharedStores{rdb: rdb, fence: fence, db: db, stop: make(chan struct{})}
	if s.engine, err = metering.NewEngine(rdb, db, cfg); err != nil {
		s.Destruct()
		return nil, err
	}
	if s.reconciler, err = s.engine.NewReconciler(rcfg); err != nil {
		s.Destruct()
		return nil, err
	}
	log.Info("metering stores opened", zap.String("redis", rconn.describe()), zap.String("postgres", pcfg.ConnConfig.Host))
	return s, nil
}

// migrate applies the migrations once per set of stores. When Postgres is
// down the gateway still starts and serves from Redis, as it would if
// Postgres failed later, and the migrations are retried in the background
// until they apply (the reconciler's writes fail meanwhile and are retried
// too).
func (s *sharedStores) migrate(log *zap.Logger) {
	s.migrateOnce.Do(func() {
		if s.migrateNow(log) {
			return
		}
		log.Error("could not apply migrations; serving from Redis and retrying in the background (or run `tollgate migrate`)")
		s.migrating.Add(1)
		go func() {
			defer s.migrating.Done()
			wait := time.Second
			for {
				select {
				case <-s.stop:
					return
				case <-time.After(wait):
				}
				if s.migrateNow(log) {
					return
				}
				wait = min(2*wait, time.Minute)
			}
		}()
	})
}

// migrateNow makes one bounded attempt and reports whether it succeeded.
func (s *sharedStores) migrateNow(log *zap.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	applied, err := metering.Migrate(ctx, s.db)
	if err != nil {
		log.Warn("applying migrations failed", zap.Error(err))
		return false
	}
	if len(applied) > 0 {
		log.Info("applied migrations", zap.Strings("migrations", applied))
	}
	return true
}

func (s *sharedStores) startReconciler() error {
	s.once.Do(func() { s.startErr = s.reconciler.Start(context.Background()) })
	return s.startErr
}

// Destruct runs when the last config using these stores is cleaned up.
func (s *sharedStores) Destruct() error {
	close(s.stop)
	s.migrating.Wait()
	if s.reconciler != nil {
		s.reconciler.Stop()
	}
	if s.engine != nil {
		s.engine.Close()
	}
	s.db.Close()
	return s.rdb.Close()
}

// sweepers holds the lease sweepers across config reloads, keyed by the
// stores' key and the sweeper settings.
var sweepers = caddy.NewUsagePool()

type sharedSweeper struct {
	sweeper  *metering.Sweeper
	once     sync.Once
	startErr error
}

func (s *sharedSweeper) start() error {
	s.once.Do(func() { s.startErr = s.sweeper.Start(context.Background()) })
	return s.startErr
}

// Destruct runs when the last config using this sweeper is cleaned up.
func (s *sharedSweeper) Destruct() error {
	s.sweeper.Stop()
	return nil
}
