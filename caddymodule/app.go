// Package caddymodule is Tollgate's Caddy glue: the `metering` app (Redis
// client, Postgres pool, reconciler), the `metering` HTTP handler that
// charges requests, and the `metering_admin` handler serving the admin API.
package caddymodule

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `metering` app: the engine shared by every metering and
// metering_admin handler of a config. Connections and the reconciler live in
// a package-level pool keyed by their settings, so a config reload reuses
// them instead of opening a second set.
type App struct {
	// Redis URL, e.g. redis://127.0.0.1:6379/0. Placeholders such as
	// {env.X} are resolved at provision time.
	Redis string `json:"redis,omitempty"`
	// Postgres URL, e.g. postgres://user@host/db.
	Postgres string `json:"postgres,omitempty"`
	// KeyPepper is the secret HMAC key for API key hashes. Required.
	KeyPepper string `json:"key_pepper,omitempty"`
	// KeyEncryptionKey, base64 of 32 bytes, enables key reveal. Optional.
	KeyEncryptionKey string `json:"key_encryption_key,omitempty"`
	// RedisPrefix names this deployment's Redis keys. Default "tollgate".
	RedisPrefix string `json:"redis_prefix,omitempty"`
	// RedisShards is how many hash tags the keys are spread over
	// (metering.Config.RedisShards): 1 (the default) for one Redis or
	// Sentinel; more lets a Redis Cluster spread them over its masters.
	// Every gateway of a deployment must use the same number.
	RedisShards int `json:"redis_shards,omitempty"`
	// SkipMigrations turns off applying migrations at start.
	SkipMigrations bool `json:"skip_migrations,omitempty"`
	// ReconcilerConsumer names this gateway in the stream consumer group.
	// Default: the host name.
	ReconcilerConsumer string `json:"reconciler_consumer,omitempty"`
	// ReconcileBatch is the most events the reconciler writes to Postgres
	// in one transaction, 1..maxReconcileBatch. Default: the engine's
	// (20,000, metering.ReconcilerConfig.WithDefaults). Like the
	// consumer name, it is read when the stores open: a reload that
	// changes only this keeps the running reconciler.
	ReconcileBatch int `json:"reconcile_batch,omitempty"`
	// SweepPolicy is what the sweeper does with a reservation whose lease
	// ran out (its gateway died): "charge" the estimate (default) or
	// "refund" it.
	SweepPolicy string `json:"sweep_policy,omitempty"`
	// SweepInterval is how often the sweeper looks for expired leases.
	// Default: the engine's (metering.SweeperConfig.WithDefaults).
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// CreditLeaseIdle, CreditLeaseLife, CreditLeaseSweepGrace and
	// CreditLeaseHeartbeat tune the credit leases of routes with
	// credit_leases on (metering.LeaseConfig: Idle, Life, SweepGrace,
	// Heartbeat). Zero: the engine's defaults (2s, 30s, 2m, 5s). Shorter
	// timings let a test or a small deployment see a dead gateway's leases
	// end sooner; the grace must outlast any Redis outage a live gateway
	// rides out, or the sweeper ends leases it still uses.
	CreditLeaseIdle       caddy.Duration `json:"credit_lease_idle,omitempty"`
	CreditLeaseLife       caddy.Duration `json:"credit_lease_life,omitempty"`
	CreditLeaseSweepGrace caddy.Duration `json:"credit_lease_sweep_grace,omitempty"`
	CreditLeaseHeartbeat  caddy.Duration `json:"credit_lease_heartbeat,omitempty"`
	// MetricsPerProject adds a `project` label to the request and credit
	// counters (docs/metrics.md): one series per project and outcome or
	// bucket, for every project seen since the process started.
	MetricsPerProject bool `json:"metrics_per_project,omitempty"`

	engine   *metering.Engine
	users    *engineUsers    // who still uses engine (engine_users.go)
	requests *requestMetrics // the handlers' counters (metrics_requests.go)
	shared   *sharedStores
	key      string
	sweepKey string
	sweeper  *sharedSweeper
	log      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "metering", New: func() caddy.Module { return new(App) }}
}

// Provision resolves placeholders, connects (lazily) and builds the engine.
func (a *App) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	a.users = newEngineUsers()
	repl := caddy.NewReplacer()
	redisURL := repl.ReplaceAll(a.Redis, "")
	pgURL := repl.ReplaceAll(a.Postgres, "")
	pepper := repl.ReplaceAll(a.KeyPepper, "")
	kekB64 := strings.TrimSpace(repl.ReplaceAll(a.KeyEncryptionKey, ""))
	prefix := repl.ReplaceAll(a.RedisPrefix, "")
	if err := checkReconcileBatch(a.ReconcileBatch); err != nil {
		return fmt.Errorf("metering: %w", err)
	}
	if redisURL == "" {
		return errors.New("metering: redis URL is required")
	}
	if pgURL == "" {
		return errors.New("metering: postgres URL is required")
	}
	if pepper == "" {
		return errors.New("metering: key_pepper is required (it resolved to an empty string)")
	}
	var kek []byte
	if kekB64 != "" {
		var err error
		if kek, err = base64.StdEncoding.DecodeString(kekB64); err != nil || len(kek) != 32 {
			return errors.New("metering: key_encryption_key must be the base64 encoding of 32 bytes")
		}
	}
	if a.RedisShards < 0 || a.RedisShards > metering.MaxRedisShards {
		return fmt.Errorf("metering: redis_shards %d: must be from 1 to %d", a.RedisShards, metering.MaxRedisShards)
	}
	cfg := metering.Config{RedisPrefix: prefix, RedisShards: a.RedisShards, KeyPepper: []byte(pepper), KeyEncryptionKey: kek,
		Logger: a.log, Leases: a.leaseConfig(), Metrics: engineMetrics}.WithDefaults()

	a.key = redisURL + "\x00" + pgURL + "\x00" + cfg.RedisPrefix + "\x00" + strconv.Itoa(cfg.RedisShards)
	v, _, err := stores.LoadOrNew(a.key, func() (caddy.Destructor, error) {
		rcfg := metering.ReconcilerConfig{Consumer: a.ReconcilerConsumer, BatchSize: a.ReconcileBatch}
		return openStores(redisURL, pgURL, cfg, rcfg, a.log)
	})
	if err != nil {
		return fmt.Errorf("metering: %w", err)
	}
	a.shared = v.(*sharedStores)
	cfg.Fence = a.shared.fence
	if a.engine, err = metering.NewEngine(a.shared.rdb, a.shared.db, cfg); err != nil {
		return err
	}
	if err := a.registerMetrics(ctx); err != nil {
		return err
	}
	return a.provisionSweeper()
}

// leaseConfig is the credit-lease timings the config sets; the engine
// fills in the rest and checks them (NewEngine).
func (a *App) leaseConfig() metering.LeaseConfig {
	return metering.LeaseConfig{Idle: time.Duration(a.CreditLeaseIdle), Life: time.Duration(a.CreditLeaseLife),
		SweepGrace: time.Duration(a.CreditLeaseSweepGrace), Heartbeat: time.Duration(a.CreditLeaseHeartbeat)}
}

// maxReconcileBatch bounds reconcile_batch. A batch's decoded entries are
// held twice while the next one is read ahead: about 54 MB of live heap at
// the default 20,000 (docs/architecture.md), so some 270 MB at this bound,
// and a transaction that long holds its row locks for seconds.
const maxReconcileBatch = 100_000

// checkReconcileBatch checks a reconcile_batch value; 0 is the default.
func checkReconcileBatch(n int) error {
	if n < 0 || n > maxReconcileBatch {
		return fmt.Errorf("reconcile_batch %d: must be an integer from 1 to %d (default 20000)", n, maxReconcileBatch)
	}
	return nil
}

// provisionSweeper finds or makes the sweeper for these stores and
// settings. It is pooled like the stores, keyed by the settings too: a
// reload with the same settings keeps the running sweeper; one with new
// settings starts a new sweeper before the old config stops its own, and
// the two briefly overlap, which the sweeper's advisory lock makes safe.
func (a *App) provisionSweeper() error {
	policy := metering.SweepPolicy(a.SweepPolicy)
	if policy == "" {
		policy = "charge"
	}
	scfg := metering.SweeperConfig{Policy: policy, Interval: time.Duration(a.SweepInterval)}
	a.sweepKey = a.key + "\x00sweep\x00" + string(policy) + "\x00" + scfg.Interval.String()
	v, _, err := sweepers.LoadOrNew(a.sweepKey, func() (caddy.Destructor, error) {
		sw, err := a.shared.engine.NewSweeper(scfg)
		if err != nil {
			return nil, err
		}
		return &sharedSweeper{sweeper: sw}, nil
	})
	if err != nil {
		return fmt.Errorf("metering: sweeper: %w", err)
	}
	a.sweeper = v.(*sharedSweeper)
	return nil
}

// Start applies the migrations and starts the shared reconciler and
// sweeper (once each, whatever the number of reloads). Migrations run here
// and not in Provision, because `tollgate validate` and every reload's dry
// run provision a config without starting it, and must not write to the
// database.
func (a *App) Start() error {
	if !a.SkipMigrations {
		a.shared.migrate(a.log)
	}
	if err := a.shared.startReconciler(); err != nil {
		return err
	}
	return a.sweeper.start()
}

// Stop does nothing: the shared stores outlive a reload and are released in Cleanup.
func (a *App) Stop() error { return nil }

// Cleanup closes this config's engine and releases its hold on the
// stores, once its requests are over: on a reload Caddy cleans up the old
// config while its servers still finish their requests (engine_users.go).
// When the process exits, the servers have finished their requests, and
// settlements still running behind them get settleTimeout.
func (a *App) Cleanup() error {
	if a.users == nil { // never provisioned
		return nil
	}
	done := a.users.releaseWhenIdle(a.release)
	if caddy.Exiting() {
		select {
		case <-done:
		case <-time.After(settleTimeout):
			a.users.releaseNow()
		}
	}
	return nil
}

// release closes this config's engine (ending its credit leases) and
// releases its hold on the sweeper and the stores.
func (a *App) release() {
	if a.engine != nil {
		a.engine.Close()
	}
	// The sweeper uses the stores' engine: released first.
	if a.sweeper != nil {
		if _, err := sweepers.Delete(a.sweepKey); err != nil {
			a.log.Error("releasing the sweeper", zap.Error(err))
		}
	}
	if a.shared != nil {
		if _, err := stores.Delete(a.key); err != nil {
			a.log.Error("releasing the stores", zap.Error(err))
		}
	}
}

// Engine is the metering core for handlers.
func (a *App) Engine() *metering.Engine { return a.engine }

// engineUsers is the count a handler enters for each request it serves
// with Engine, so that a reload closes the engine after the request.
func (a *App) engineUsers() *engineUsers { return a.users }

// appFrom returns the configured metering app or a clear error.
func appFrom(ctx caddy.Context, who string) (*App, error) {
	v, err := ctx.AppIfConfigured("metering")
	if err != nil {
		return nil, fmt.Errorf("%s needs the metering app: add a `metering { redis … postgres … key_pepper … }` global option: %w", who, err)
	}
	return v.(*App), nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
