package metering_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

func redisPriceVersion(t *testing.T, w *meteringtest.Bundle) int64 {
	t.Helper()
	v, err := w.Redis.Get(context.Background(), w.Engine.Keys().Shard(0).PriceVersion()).Int64()
	require.NoError(t, err)
	return v
}

func pgPriceVersion(t *testing.T, w *meteringtest.Bundle) int64 {
	t.Helper()
	var v int64
	require.NoError(t, w.DB.QueryRow(context.Background(), `SELECT version FROM price_table_version`).Scan(&v))
	return v
}

func TestPriceCRUDAndVersion(t *testing.T) {
	t.Parallel()
	w := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	e := w.Engine

	ps, err := e.ListPrices(ctx)
	require.NoError(t, err)
	require.Empty(t, ps)
	_, err = e.GetPrice(ctx, "gpt-4o")
	require.ErrorIs(t, err, metering.ErrNotFound)

	p, err := e.PutPrice(ctx, "ops", metering.Price{Model: "openai/gpt-4o", InputPerMillion: 2_500_000, OutputPerMillion: 10_000_000})
	require.NoError(t, err)
	require.Equal(t, metering.Credits(2_500_000), p.InputPerMillion)
	require.False(t, p.UpdatedAt.IsZero())
	require.Equal(t, int64(1), pgPriceVersion(t, w))
	require.Equal(t, int64(1), redisPriceVersion(t, w), "version announced after commit")

	// Replace: absent fields become 0.
	p, err = e.PutPrice(ctx, "ops", metering.Price{Model: "openai/gpt-4o", PerRequest: 5})
	require.NoError(t, err)
	require.Equal(t, metering.Price{Model: "openai/gpt-4o", PerRequest: 5, UpdatedAt: p.UpdatedAt}, p)
	_, err = e.PutPrice(ctx, "ops", metering.Price{Model: "tts-1", PerCharacter: 15})
	require.NoError(t, err)
	require.Equal(t, int64(3), redisPriceVersion(t, w))

	ps, err = e.ListPrices(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	require.Equal(t, "openai/gpt-4o", ps[0].Model)
	require.Equal(t, "tts-1", ps[1].Model)

	// Invalid input and a missing model write nothing, not even a version.
	_, err = e.PutPrice(ctx, "ops", metering.Price{Model: "bad", PerImage: -1})
	var inv *metering.InvalidError
	require.True(t, errors.As(err, &inv) && inv.Field == "per_image", "%v", err)
	require.ErrorIs(t, e.DeletePrice(ctx, "ops", "nope"), metering.ErrNotFound)
	require.Equal(t, int64(3), pgPriceVersion(t, w))
	require.Equal(t, int64(3), redisPriceVersion(t, w))

	require.NoError(t, e.DeletePrice(ctx, "ops", "tts-1"))
	_, err = e.GetPrice(ctx, "tts-1")
	require.ErrorIs(t, err, metering.ErrNotFound)
	require.Equal(t, int64(4), redisPriceVersion(t, w))

	entries, _, err := e.ListAudit(ctx, metering.AuditFilter{Actor: "ops"}, 10)
	require.NoError(t, err)
	require.Len(t, entries, 4)
	require.Equal(t, "price.delete", entries[0].Action)
	require.Equal(t, "tts-1", entries[0].Target)
	require.Equal(t, "price.put", entries[3].Action)
	require.Equal(t, "openai/gpt-4o", entries[3].Target)
	require.EqualValues(t, 2.5, entries[3].Details["input_per_million"])

	// A delete committed whose announcement was lost (Redis failed after
	// the commit): repeating it answers 404 and announces the version.
	_, err = w.DB.Exec(ctx, `WITH d AS (DELETE FROM prices) UPDATE price_table_version SET version = version + 1`)
	require.NoError(t, err)
	require.ErrorIs(t, e.DeletePrice(ctx, "ops", "openai/gpt-4o"), metering.ErrNotFound)
	require.Equal(t, int64(5), redisPriceVersion(t, w))
}

// A price changed through another gateway reaches this one's cache: at
// once through ReloadPrices, else at the next version check.
func TestPriceForSeesOtherGateway(t *testing.T) {
	t.Parallel()
	clock := meteringtest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	w := meteringtest.New(t, meteringtest.Options{Clock: clock})
	ctx := context.Background()
	gw1, gw2 := w.Engine, w.NewEngine(t)

	_, v0, ok, err := gw1.PriceFor(ctx, "gpt-4o")
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, int64(0), v0)

	_, err = gw2.PutPrice(ctx, "ops", metering.Price{Model: "gpt-4o", OutputPerMillion: 10_000_000})
	require.NoError(t, err)
	// The clock has not moved: gw1 still answers from its copy.
	_, v, ok, err := gw1.PriceFor(ctx, "gpt-4o")
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, v0, v)

	require.NoError(t, gw1.ReloadPrices(ctx))
	p, v, ok, err := gw1.PriceFor(ctx, "gpt-4o")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, metering.Credits(10_000_000), p.OutputPerMillion)
	require.Equal(t, int64(1), v)
	require.Equal(t, redisPriceVersion(t, w), v)

	// Without a reload: the version check after a second picks it up.
	_, err = gw2.PutPrice(ctx, "ops", metering.Price{Model: "gpt-4o", OutputPerMillion: 20_000_000})
	require.NoError(t, err)
	clock.Advance(1100 * time.Millisecond)
	p, v, ok, err = gw1.PriceFor(ctx, "gpt-4o")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, metering.Credits(20_000_000), p.OutputPerMillion)
	require.Equal(t, int64(2), v)

	// The writing gateway sees its own change at once.
	require.NoError(t, gw2.DeletePrice(ctx, "ops", "gpt-4o"))
	_, v, ok, err = gw2.PriceFor(ctx, "gpt-4o")
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, int64(3), v)
}

// A cold Redis (flushed, or never written) is seeded with the Postgres
// version, so every gateway labels the same table with the same number.
func TestPriceVersionColdRedis(t *testing.T) {
	t.Parallel()
	w := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	for _, m := range []string{"a", "b", "c"} {
		_, err := w.Engine.PutPrice(ctx, "ops", metering.Price{Model: m, PerRequest: 1})
		require.NoError(t, err)
	}
	require.NoError(t, w.Redis.Del(ctx, w.Engine.Keys().Shard(0).PriceVersion()).Err())

	gw1, gw2 := w.NewEngine(t), w.NewEngine(t)
	_, v1, ok, err := gw1.PriceFor(ctx, "a")
	require.NoError(t, err)
	require.True(t, ok)
	_, v2, _, err := gw2.PriceFor(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, int64(3), v1)
	require.Equal(t, v1, v2)
	require.Equal(t, int64(3), redisPriceVersion(t, w))

	// A Redis version ahead of Postgres (e.g. a restored database) must
	// not leave every reservation stale: the copy takes Redis's number.
	require.NoError(t, w.Redis.Set(ctx, w.Engine.Keys().Shard(0).PriceVersion(), 100, 0).Err())
	require.NoError(t, gw1.ReloadPrices(ctx))
	_, v1, ok, err = gw1.PriceFor(ctx, "c")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(100), v1)
}

// A price written while Redis is unverified (restarted, or never checked
// since this gateway started) is announced once Redis is verified, in the
// same call: the admin sees success, and only one version is spent.
func TestPutPriceVerifiesARestartedRedis(t *testing.T) {
	t.Parallel()
	w := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	_, err := w.Engine.PutPrice(ctx, "ops", metering.Price{Model: "a", PerRequest: 1})
	require.NoError(t, err)

	w.RestartRedisFrom(t, w.SnapshotRedis(t))
	_, err = w.Engine.PutPrice(ctx, "ops", metering.Price{Model: "a", PerRequest: 2})
	require.NoError(t, err)
	require.Equal(t, int64(2), pgPriceVersion(t, w))
	require.Equal(t, int64(2), redisPriceVersion(t, w))

	// A gateway's first price lookup after the restart verifies too.
	w.RestartRedisFrom(t, w.SnapshotRedis(t))
	gw := w.NewEngine(t)
	p, v, ok, err := gw.PriceFor(ctx, "a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), v)
	require.Equal(t, metering.Credits(2), p.PerRequest)
}
