// Command tollgate-bench is the gateway of `make bench`: Caddy with
// Tollgate's modules, as cmd/tollgate, plus the benchmark-only
// `bench_floor` handler (bench/floor), so the metered routes and the
// floor routes run in one binary and one process.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tollgate/tollgate/bench/floor"
	_ "github.com/tollgate/tollgate/caddymodule"
)

func main() { caddycmd.Main() }
