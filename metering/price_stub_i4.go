package metering

// TEMPORARY (engineer B): the price table API of the issue 4 contract,
// section A, so reserve/settle compile and test before branch i4-prices has
// it. Delete this file when merging the i4-prices commits that add
// PriceFor, PutPrice, ReloadPrices and RedisKeys.PriceVersion.

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
)

var stubPrices sync.Map // *Engine → *sync.Map (model → Price)

func (e *Engine) stubTable() *sync.Map {
	m, _ := stubPrices.LoadOrStore(e.keys.tag, &sync.Map{})
	return m.(*sync.Map)
}

// PutPrice (stub) keeps p in process, per Redis prefix, and bumps the version.
func (e *Engine) PutPrice(ctx context.Context, actor string, p Price) (Price, error) {
	if err := p.Validate(); err != nil {
		return Price{}, err
	}
	e.stubTable().Store(p.Model, p)
	return p, unavailable(e.rdb.Incr(ctx, e.keys.PriceVersion()).Err())
}

// PriceFor (stub) reads the version from Redis on every call.
func (e *Engine) PriceFor(ctx context.Context, model string) (Price, int64, bool, error) {
	v, err := e.rdb.Get(ctx, e.keys.PriceVersion()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Price{}, 0, false, unavailable(err)
	}
	p, ok := e.stubTable().Load(model)
	if !ok {
		return Price{}, v, false, nil
	}
	return p.(Price), v, true, nil
}

// ReloadPrices (stub): nothing cached.
func (e *Engine) ReloadPrices(ctx context.Context) error { return nil }

// PriceVersion is the integer bumped by every price change.
func (k RedisKeys) PriceVersion() string { return k.tag + ":prices:v" }
