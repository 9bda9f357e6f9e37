package metering

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// ListPrices returns every price, by model name.
func (e *Engine) ListPrices(ctx context.Context) ([]Price, error) {
	return listPrices(ctx, e.db)
}

// GetPrice returns one model's price from Postgres (not the cache: admins
// must see what is stored). ErrNotFound when the model has none.
func (e *Engine) GetPrice(ctx context.Context, model string) (Price, error) {
	return getPrice(ctx, e.db, model)
}

// PutPrice creates or replaces a model's price, audited as "price.put".
// Gateways charge by it from their next request: the new table version is
// published to Redis after the commit, and every gateway's copy of the
// table (and the reserve script) compares against it.
func (e *Engine) PutPrice(ctx context.Context, actor string, p Price) (Price, error) {
	if err := p.Validate(); err != nil {
		return Price{}, err
	}
	var saved Price
	var version int64
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		var err error
		if version, err = bumpPriceVersion(ctx, tx); err != nil {
			return err
		}
		if saved, err = upsertPrice(ctx, tx, p, version); err != nil {
			return fmt.Errorf("save price for model %q: %w", p.Model, err)
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "price.put", Target: p.Model,
			Details: priceDetails(p, version)})
	})
	if err != nil {
		return Price{}, err
	}
	return saved, e.publishPriceVersion(ctx, p.Model, version)
}

// DeletePrice removes a model's price, audited as "price.delete".
// ErrNotFound when it has none (and nothing is written).
func (e *Engine) DeletePrice(ctx context.Context, actor, model string) error {
	var version int64
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		var err error
		// Bumped first: its row lock orders this delete among the other writes.
		if version, err = bumpPriceVersion(ctx, tx); err != nil {
			return err
		}
		old, err := deletePriceRow(ctx, tx, model)
		if err != nil {
			return err // ErrNotFound rolls the bump back too
		}
		return insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "price.delete", Target: model,
			Details: priceDetails(old, version)})
	})
	if errors.Is(err, ErrNotFound) {
		// Maybe a retry of a delete whose announcement failed: announce
		// the current version so the retry repairs it, as a PUT retry does.
		e.announceCurrentPriceVersion(ctx)
	}
	if err != nil {
		return err
	}
	return e.publishPriceVersion(ctx, model, version)
}

// announceCurrentPriceVersion raises the Redis version to Postgres's, best
// effort: a failure is logged, and the next gateway load repairs it too.
func (e *Engine) announceCurrentPriceVersion(ctx context.Context) {
	v, err := currentPriceVersion(ctx, e.db)
	if err == nil {
		err = e.afterVerifying(ctx, func() error {
			_, err := e.announcePriceVersion(ctx, v)
			return err
		})
	}
	if err != nil {
		e.log.Warn("announce price table version", zap.Error(err))
	}
}

// priceDetails is a price as the audit log records it (admin API field names).
func priceDetails(p Price, version int64) map[string]any {
	d := map[string]any{"version": version}
	for _, f := range p.rates() {
		d[f.field] = f.v
	}
	return d
}

// publishPriceVersion raises the Redis price version to a committed one.
// It runs after the commit, never before: a gateway that saw the new
// version and reloaded must find the new price in Postgres.
func (e *Engine) publishPriceVersion(ctx context.Context, model string, version int64) error {
	e.prices.expire() // this gateway re-checks at its next lookup
	err := e.afterVerifying(ctx, func() error {
		_, err := e.announcePriceVersion(ctx, version)
		return err
	})
	if err != nil {
		// Committed but not announced: other gateways keep the old price
		// until their next reload. Repeating the request announces it.
		return fmt.Errorf("price for model %q saved (version %d) but not announced to gateways, repeat the request: %w",
			model, version, unavailable(err))
	}
	return nil
}
