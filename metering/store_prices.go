package metering

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Queries of the prices and price_table_version tables (migration 004).

const priceColumns = `model, input_per_million, output_per_million, per_character,
	per_second, per_image, per_request, updated_at`

func scanPrice(row pgx.Row) (Price, error) {
	var p Price
	err := row.Scan(&p.Model, &p.InputPerMillion, &p.OutputPerMillion, &p.PerCharacter,
		&p.PerSecond, &p.PerImage, &p.PerRequest, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

func getPrice(ctx context.Context, q querier, model string) (Price, error) {
	p, err := scanPrice(q.QueryRow(ctx, `SELECT `+priceColumns+` FROM prices WHERE model = $1`, model))
	if errors.Is(err, ErrNotFound) {
		return p, noPrice(model)
	}
	if err != nil {
		return p, fmt.Errorf("price for model %q: %w", model, err)
	}
	return p, nil
}

func listPrices(ctx context.Context, q querier) ([]Price, error) {
	rows, err := q.Query(ctx, `SELECT `+priceColumns+` FROM prices ORDER BY model`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Price{}
	for rows.Next() {
		p, err := scanPrice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// loadPriceTable reads every price and the table version as one snapshot
// (a repeatable-read transaction), so the version labels exactly that data.
func loadPriceTable(ctx context.Context, q pgx.Tx) (map[string]Price, int64, error) {
	var version int64
	if err := q.QueryRow(ctx, `SELECT version FROM price_table_version`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("price table version: %w", err)
	}
	ps, err := listPrices(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("load prices: %w", err)
	}
	m := make(map[string]Price, len(ps))
	for _, p := range ps {
		m[p.Model] = p
	}
	return m, version, nil
}

// currentPriceVersion reads the price table's version.
func currentPriceVersion(ctx context.Context, q querier) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `SELECT version FROM price_table_version`).Scan(&v)
	return v, err
}

// bumpPriceVersion increments the table version inside a write
// transaction. The row lock it takes serializes price writers until commit.
func bumpPriceVersion(ctx context.Context, tx pgx.Tx) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `UPDATE price_table_version SET version = version + 1 RETURNING version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("bump price table version: %w", err)
	}
	return v, nil
}

func upsertPrice(ctx context.Context, q querier, p Price, version int64) (Price, error) {
	return scanPrice(q.QueryRow(ctx, `INSERT INTO prices (model, input_per_million, output_per_million,
			per_character, per_second, per_image, per_request, version, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
		ON CONFLICT (model) DO UPDATE SET input_per_million = EXCLUDED.input_per_million,
			output_per_million = EXCLUDED.output_per_million, per_character = EXCLUDED.per_character,
			per_second = EXCLUDED.per_second, per_image = EXCLUDED.per_image,
			per_request = EXCLUDED.per_request, version = EXCLUDED.version, updated_at = now()
		RETURNING `+priceColumns,
		p.Model, p.InputPerMillion, p.OutputPerMillion, p.PerCharacter, p.PerSecond, p.PerImage,
		p.PerRequest, version))
}

// deletePriceRow removes a price, returning what it was.
func deletePriceRow(ctx context.Context, q querier, model string) (Price, error) {
	p, err := scanPrice(q.QueryRow(ctx, `DELETE FROM prices WHERE model = $1 RETURNING `+priceColumns, model))
	if errors.Is(err, ErrNotFound) {
		return p, noPrice(model)
	}
	if err != nil {
		return p, fmt.Errorf("price for model %q: %w", model, err)
	}
	return p, nil
}
