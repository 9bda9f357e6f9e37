package metering

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// priceCheckInterval is how often a gateway compares its copy of the price
// table with the Redis version. The reserve script compares on every
// request anyway; this check only bounds how long an idle gateway's copy
// can lag, at one GET per second.
const priceCheckInterval = time.Second

var priceVersionScript = mustScript("price_version.lua")

// Each shard's PriceVersion holds the price table version (an integer;
// missing reads as 0). It equals the Postgres version once announced:
// writers raise it in every shard after committing, and a gateway loading
// the table raises it to what it loaded, so a cold Redis is seeded with
// the same number by every gateway.

// priceCache is a gateway's in-process copy of the price table.
type priceCache struct {
	snap     atomic.Pointer[priceSnapshot]
	checking atomic.Bool // one goroutine at a time asks Redis
	loadMu   sync.Mutex  // loads are serialized
	loads    atomic.Int64
}

type priceSnapshot struct {
	prices  map[string]Price // never modified once stored
	version int64
	checked time.Time // last time the version was known to match Redis
	loadSeq int64     // which load produced it (see ReloadPrices)
}

// expire makes the next lookup re-check the Redis version.
func (c *priceCache) expire() {
	if s := c.snap.Load(); s != nil {
		c.snap.CompareAndSwap(s, &priceSnapshot{prices: s.prices, version: s.version, loadSeq: s.loadSeq})
	}
}

// PriceFor is the hot-path lookup: the engine's in-process copy of the
// price table plus its version. ok=false: no price for that model.
//
// The copy is loaded on first use and reloaded when the Redis version
// differs from it, checked at most once per priceCheckInterval (other
// callers meanwhile use the copy they have; the reserve script catches a
// stale one).
func (e *Engine) PriceFor(ctx context.Context, model string) (p Price, version int64, ok bool, err error) {
	s := e.prices.snap.Load()
	switch {
	case s == nil:
		if s, err = e.loadPrices(ctx, e.prices.loads.Load()); err != nil {
			return Price{}, 0, false, err
		}
	case e.cfg.Now().Sub(s.checked) >= priceCheckInterval && e.prices.checking.CompareAndSwap(false, true):
		s, err = e.checkPrices(ctx, s)
		e.prices.checking.Store(false)
		if err != nil {
			return Price{}, 0, false, err
		}
	}
	p, ok = s.prices[model]
	return p, s.version, ok, nil
}

// checkPrices compares s with the Redis version and reloads when they differ.
func (e *Engine) checkPrices(ctx context.Context, s *priceSnapshot) (*priceSnapshot, error) {
	// The first shard is asked: a version announced to some shards only
	// (a writer stopped half way) is caught by the reserve script of the
	// others, whose refusal reloads, which announces to every shard.
	v, err := e.rdb.Get(ctx, e.keys.Shard(0).PriceVersion()).Int64()
	if errors.Is(err, redis.Nil) {
		v, err = 0, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	if v != s.version {
		return e.loadPrices(ctx, e.prices.loads.Load())
	}
	fresh := &priceSnapshot{prices: s.prices, version: s.version, checked: e.cfg.Now(), loadSeq: s.loadSeq}
	e.prices.snap.CompareAndSwap(s, fresh)
	return fresh, nil
}

// ReloadPrices replaces the in-process copy with the table as Postgres has
// it now (called when a script reports the version is stale). Concurrent
// callers share one load: a load that began after this call is as good.
// On failure the old copy stays, marked for a re-check at the next lookup
// (which reloads, or fails closed, while Redis says it is outdated); the
// reserve script refuses reservations priced by it meanwhile.
func (e *Engine) ReloadPrices(ctx context.Context) error {
	_, err := e.loadPrices(ctx, e.prices.loads.Load())
	if err != nil {
		e.prices.expire()
	}
	return err
}

// loadPrices reads the table from Postgres and stores it as the copy,
// unless a load numbered above `after` (the load count the caller saw
// before waiting here) has completed meanwhile: that load started after
// the caller's reason to reload, so its data is at least as new.
func (e *Engine) loadPrices(ctx context.Context, after int64) (*priceSnapshot, error) {
	e.prices.loadMu.Lock()
	defer e.prices.loadMu.Unlock()
	if s := e.prices.snap.Load(); s != nil && s.loadSeq > after {
		return s, nil
	}
	seq := e.prices.loads.Add(1)
	prices, version, err := e.readPriceTable(ctx)
	if err != nil {
		return nil, err
	}
	// Announce what was loaded: this seeds a cold Redis and repairs a
	// version a writer committed but failed to announce.
	var redisV int64
	err = e.afterVerifying(ctx, func() (err error) {
		redisV, err = e.announcePriceVersion(ctx, version)
		return err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	if redisV > version {
		// A writer committed and announced after our read: read again.
		if prices, version, err = e.readPriceTable(ctx); err != nil {
			return nil, err
		}
		if redisV > version {
			// Redis is ahead of Postgres (a restored database, or another
			// database sharing the key prefix). Label the copy with Redis's
			// number, or every reservation would be refused as stale.
			e.log.Warn("Redis price version is ahead of Postgres; using the Postgres prices",
				zap.Int64("redis_version", redisV), zap.Int64("postgres_version", version))
			version = redisV
		} else if _, err := e.announcePriceVersion(ctx, version); err != nil {
			return nil, unavailable(err)
		}
	}
	s := &priceSnapshot{prices: prices, version: version, checked: e.cfg.Now(), loadSeq: seq}
	e.prices.snap.Store(s)
	return s, nil
}

// announcePriceVersion raises every shard's price version to at least
// version, and returns the highest version a shard holds afterwards. A
// shard ahead of version (a writer's announcement that reached it first)
// takes the others up with it: the version a gateway labels its copy with
// must be every shard's, or the reserve scripts of the shards behind
// would refuse each estimate as stale.
func (e *Engine) announcePriceVersion(ctx context.Context, version int64) (int64, error) {
	highest := version
	for pass := 0; pass < 2; pass++ {
		raised := highest
		for _, sh := range e.keys.Shards() {
			v, err := priceVersionScript.Run(ctx, e.rdb, []string{sh.PriceVersion()}, raised).Int64()
			if err != nil {
				return 0, err
			}
			highest = max(highest, v)
		}
		if highest == raised {
			break
		}
	}
	return highest, nil
}

// readPriceTable reads the prices and their version as one snapshot.
func (e *Engine) readPriceTable(ctx context.Context) (prices map[string]Price, version int64, err error) {
	err = pgx.BeginTxFunc(ctx, e.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			prices, version, err = loadPriceTable(ctx, tx)
			return err
		})
	if err != nil {
		return nil, 0, fmt.Errorf("load price table: %w", err)
	}
	return prices, version, nil
}
