package caddymodule

import (
	"context"
	"fmt"
	"sync"

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
	rdb        *redis.Client
	db         *pgxpool.Pool
	engine     *metering.Engine // for the reconciler only
	reconciler *metering.Reconciler
	once       sync.Once
	startErr   error
}

func openStores(redisURL, pgURL string, cfg metering.Config, consumer string, log *zap.Logger) (*sharedStores, error) {
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	// Charges are pipelined by the engine, so a modest pool suffices.
	if ropt.PoolSize == 0 {
		ropt.PoolSize = 32
	}
	pcfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return nil, fmt.Errorf("postgres URL: %w", err)
	}
	rdb := redis.NewClient(ropt)
	db, err := pgxpool.NewWithConfig(context.Background(), pcfg) // connects lazily
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &sharedStores{rdb: rdb, db: db}
	if s.engine, err = metering.NewEngine(rdb, db, cfg); err != nil {
		s.Destruct()
		return nil, err
	}
	if s.reconciler, err = s.engine.NewReconciler(metering.ReconcilerConfig{Consumer: consumer}); err != nil {
		s.Destruct()
		return nil, err
	}
	log.Info("metering stores opened", zap.String("redis", ropt.Addr), zap.String("postgres", pcfg.ConnConfig.Host))
	return s, nil
}

func (s *sharedStores) startReconciler() error {
	s.once.Do(func() { s.startErr = s.reconciler.Start(context.Background()) })
	return s.startErr
}

// Destruct runs when the last config using these stores is cleaned up.
func (s *sharedStores) Destruct() error {
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
