package metering

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// Config configures an Engine.
type Config struct {
	// RedisPrefix names this deployment's keys ("tollgate" → "{tollgate}:…").
	RedisPrefix string
	// RedisShards is how many shards the keys are split into, each under a
	// hash tag of its own (rediskeys.go): 1 (the default) keeps every key
	// under one tag; a Redis Cluster spreads more over its masters. Every
	// gateway of a deployment must use the same number.
	RedisShards int
	// KeyPepper is the HMAC key for API key hashes. Required; changing it
	// invalidates every key.
	KeyPepper []byte
	// KeyEncryptionKey (32 bytes) enables revealing keys later; optional.
	KeyEncryptionKey []byte
	// Now is the clock; tests inject their own. Default time.Now.
	Now func() time.Time
	// KeyIndexSyncTTL is how long a full key-index sync from Postgres is
	// trusted before the next miss re-syncs. Default 10 minutes.
	KeyIndexSyncTTL time.Duration
	// NegativeCacheSize bounds how many unknown key hashes each gateway
	// remembers. Default 65536.
	NegativeCacheSize int
	// NegativeCacheTTL is how long an unknown key is remembered. Default 10s.
	NegativeCacheTTL time.Duration
	// ScriptTimeout bounds one pipeline of script calls. A call that times
	// out after it was sent may still run: charges and reservations are
	// then cancelled (cancel.go). Default 5s.
	ScriptTimeout time.Duration
	// Fence, when set, is the RedisFence whose OnConnect the Redis client
	// runs on every new connection: the engine then never writes to a
	// Redis that restarted until it is verified against the ledger
	// (fence.go, heal.go). The gateway always sets it.
	Fence *RedisFence
	// Leases configures the credit leases ChargeLeased serves from.
	Leases LeaseConfig
	// Metrics, when set, counts what the engine does (metrics.go); several
	// engines may share one. Nil counts nothing.
	Metrics *Metrics
	Logger  *zap.Logger
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.RedisPrefix == "" {
		c.RedisPrefix = "tollgate"
	}
	if c.RedisShards == 0 {
		c.RedisShards = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeyIndexSyncTTL == 0 {
		c.KeyIndexSyncTTL = 10 * time.Minute
	}
	if c.NegativeCacheSize == 0 {
		c.NegativeCacheSize = 65536
	}
	if c.NegativeCacheTTL == 0 {
		c.NegativeCacheTTL = 10 * time.Second
	}
	if c.ScriptTimeout == 0 {
		c.ScriptTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Leases = c.Leases.WithDefaults()
	return c
}

// Engine is the metering core: API key resolution, charges, admin money
// operations and the ledger. It uses but does not own its Redis client and
// Postgres pool.
type Engine struct {
	cfg    Config
	rdb    redis.UniversalClient
	db     *pgxpool.Pool
	keys   RedisKeys
	hasher *KeyHasher
	sealer *KeySealer // nil: reveal disabled
	ids    *EventIDs
	log    *zap.Logger
	cache  *userCache
	runner *scriptRunner
	// releases batches in-flight lease releases (inflight.go), a list
	// per shard.
	releases []*releases
	// repairs retries idempotent Redis work through outages (repairs.go).
	repairs *repairs
	// keySync makes concurrent misses share one key-index sync.
	keySync sync.Mutex
	// prices is this gateway's copy of the price table (price_cache.go).
	prices priceCache
	// leases are this gateway's credit leases (lease.go).
	leases *leaseTable
}

// NewEngine checks the config and builds an engine.
func NewEngine(rdb redis.UniversalClient, db *pgxpool.Pool, cfg Config) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if rdb == nil || db == nil {
		return nil, errors.New("metering engine needs a Redis client and a Postgres pool")
	}
	keys, err := NewRedisKeys(cfg.RedisPrefix, cfg.RedisShards)
	if err != nil {
		return nil, err
	}
	if err := cfg.Leases.validate(); err != nil {
		return nil, err
	}
	hasher, err := NewKeyHasher(cfg.KeyPepper)
	if err != nil {
		return nil, fmt.Errorf("key_pepper: %w", err)
	}
	e := &Engine{cfg: cfg, rdb: rdb, db: db, keys: keys, hasher: hasher,
		ids: NewEventIDs(), log: cfg.Logger,
		cache:   newUserCache(cfg.NegativeCacheSize, cfg.NegativeCacheTTL),
		repairs: newRepairs(cfg.Logger)}
	if len(cfg.KeyEncryptionKey) > 0 {
		if e.sealer, err = NewKeySealer(cfg.KeyEncryptionKey); err != nil {
			return nil, err
		}
	}
	e.leases = newLeaseTable(e, cfg.Leases)
	e.releases = e.newReleases(len(keys.Shards()))
	e.runner = newScriptRunner(rdb, cfg.ScriptTimeout)
	if cfg.Metrics != nil {
		e.runner.SetObserver(runObserver{cfg.Metrics})
	}
	if cfg.Fence != nil {
		switch rdb.(type) {
		case *redis.Client, *redis.ClusterClient:
		default:
			return nil, errors.New("a Redis fence needs a *redis.Client or a *redis.ClusterClient")
		}
		if fk := cfg.Fence.keys; fk.Prefix() != keys.Prefix() || len(fk.Shards()) != len(keys.Shards()) {
			return nil, fmt.Errorf("the Redis fence guards %s in %d shards, not %s in %d",
				fk.Prefix(), len(fk.Shards()), keys.Prefix(), len(keys.Shards()))
		}
		e.runner.SetFence(cfg.Fence, e.VerifyRedis)
		cfg.Fence.watch(e, e.replayReleases)
	}
	return e, nil
}

// Close ends this gateway's credit leases and stops the engine's
// background script pipeline and retries.
func (e *Engine) Close() {
	e.leases.stop()
	if e.cfg.Fence != nil {
		e.cfg.Fence.unwatch(e)
	}
	e.runner.Close()
	e.repairs.close()
}

// Keys exposes the Redis key names (for tests and tools).
func (e *Engine) Keys() RedisKeys { return e.keys }

// RevealEnabled reports whether keys are stored encrypted for reveal.
func (e *Engine) RevealEnabled() bool { return e.sealer != nil }

// unavailable wraps Redis errors so callers can fail closed with a 503.
func unavailable(err error) error { return scriptrun.Unavailable(err) }
