// Package migrations holds Tollgate's numbered SQL migrations
// (NNN_name.up.sql), embedded into the binary and applied in order by
// metering.Migrate.
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS
