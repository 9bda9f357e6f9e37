// Command tollgate is Caddy's own command line with Tollgate's modules
// compiled in: `tollgate run --config Caddyfile`, `tollgate adapt`, …, plus
// `tollgate migrate`.
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tollgate/tollgate/caddymodule"
)

func main() {
	if isScrubber() {
		runScrubber()
		return
	}
	// The gateway's own output never carries an API key (scrub.go). Only
	// for `run`: commands such as `users import` print keys on purpose.
	if len(os.Args) > 1 && os.Args[1] == "run" {
		if err := scrubOutput(); err != nil {
			fmt.Fprintln(os.Stderr, "tollgate: cannot start the output scrubber, not starting:", err)
			os.Exit(1)
		}
	}
	caddycmd.Main()
}
