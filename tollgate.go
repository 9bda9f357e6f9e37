// Package tollgate registers Tollgate's Caddy modules, so that
// `xcaddy build --with github.com/tollgate/tollgate` builds a Caddy with them.
package tollgate

import _ "github.com/tollgate/tollgate/caddymodule"
