package caddymodule_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfileFmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// `tollgate validate` and a reload's dry run provision a config without
// starting it: that must not write to the database. Migrations are applied
// when the config starts.
func TestValidateWritesNothing(t *testing.T) {
	ctx := context.Background()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "t_validate_" + hex.EncodeToString(rnd[:])
	pool := meteringtest.Postgres(t, schema) // an empty schema, no migrations
	b := &meteringtest.Bundle{Schema: schema, Prefix: "validate-" + schema}
	caddyfile := globalOptions(t, b, meteringtest.RedisURL(), "validate") + fmt.Sprintf(`http://%s {
	metering
	respond "ok"
}`, freePort(t))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfileFmt.Format([]byte(caddyfile)), nil)
	require.NoError(t, err)
	var c caddy.Config
	require.NoError(t, caddy.StrictUnmarshalJSON(cfg, &c))
	require.NoError(t, caddy.Validate(&c))

	tables := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, schema).Scan(&n))
		return n
	}
	require.Zero(t, tables(), "validating a config created tables")

	// Starting it applies them.
	require.NoError(t, caddy.Load(cfg, true))
	t.Cleanup(func() { caddy.Stop() })
	var migrated bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations')`, schema).Scan(&migrated))
	require.True(t, migrated, "starting the config did not migrate")
}
