// Command tollgate is Caddy's own command line with Tollgate's modules
// compiled in: `tollgate run --config Caddyfile`, `tollgate adapt`, …, plus
// `tollgate migrate`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tollgate/tollgate/caddymodule"
)

func main() {
	caddycmd.Main()
}
