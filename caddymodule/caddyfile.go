package caddymodule

import (
	"math"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/tollgate/tollgate/metering"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("metering", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("metering", parseHandler)
	httpcaddyfile.RegisterHandlerDirective("metering_admin", parseAdminHandler)
	// Both go before reverse_proxy, so no `order` line is needed; the admin
	// API is registered first so it comes before metering too (Caddy only
	// accepts standard directives as anchors).
	httpcaddyfile.RegisterDirectiveOrder("metering_admin", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterDirectiveOrder("metering", httpcaddyfile.Before, "reverse_proxy")
}

// The Caddyfile is read in two steps: UnmarshalCaddyfile turns the tokens
// into the module's JSON fields (argument counts; a number, duration or
// size that is one, and not zero, which in the JSON means the default),
// and the checks of what the values mean are Provision's. parseHandler
// runs the handler's (provisionSettings) on a copy at adapt time, so that
// `caddy adapt` and `tollgate validate` name the bad line, and a JSON
// config is held to exactly the same rules.

// parseGlobalOption parses the `metering` global option (App.UnmarshalCaddyfile).
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "metering", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the `metering` global option:
//
//	metering {
//		redis               <url>
//		postgres            <url>
//		key_pepper          <secret>
//		key_encryption_key  <base64 of 32 bytes>
//		redis_prefix        <name>
//		reconciler_consumer <name>
//		reconcile_batch     <events per transaction>
//		skip_migrations
//		sweep_policy        charge|refund
//		sweep_interval      <duration>
//		credit_lease_idle        <duration>
//		credit_lease_life        <duration>
//		credit_lease_sweep_grace <duration>
//		credit_lease_heartbeat   <duration>  (at least 1s)
//		metrics_per_project
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "redis":
			a.Redis, err = optionalArg(d)
		case "postgres":
			a.Postgres, err = optionalArg(d)
		case "key_pepper":
			a.KeyPepper, err = optionalArg(d)
		case "key_encryption_key":
			a.KeyEncryptionKey, err = optionalArg(d)
		case "redis_prefix":
			a.RedisPrefix, err = optionalArg(d)
		case "redis_shards":
			var n int64
			if n, err = countArg(d); err == nil {
				if n > metering.MaxRedisShards {
					err = d.Errf("redis_shards %d: must be an integer from 1 to %d (default 1)", n, metering.MaxRedisShards)
				} else {
					a.RedisShards = int(n)
				}
			}
		case "reconciler_consumer":
			a.ReconcilerConsumer, err = optionalArg(d)
		case "reconcile_batch":
			var n int64
			if n, err = countArg(d); err == nil {
				if n > maxReconcileBatch {
					err = d.Errf("reconcile_batch %d: must be an integer from 1 to %d (default 20000)", n, maxReconcileBatch)
				} else {
					a.ReconcileBatch = int(n)
				}
			}
		case "sweep_policy":
			// Checked here as well as by the sweeper, whose check needs
			// the stores: a typo is reported when the config is adapted.
			if a.SweepPolicy, err = oneArg(d); err == nil && a.SweepPolicy != "charge" && a.SweepPolicy != "refund" {
				err = d.Errf("sweep_policy %q: charge or refund", a.SweepPolicy)
			}
		case "sweep_interval":
			a.SweepInterval, err = durationArg(d, "30s")
		case "credit_lease_idle":
			a.CreditLeaseIdle, err = durationArg(d, "2s")
		case "credit_lease_life":
			a.CreditLeaseLife, err = durationArg(d, "30s")
		case "credit_lease_sweep_grace":
			a.CreditLeaseSweepGrace, err = durationArg(d, "2m")
		case "credit_lease_heartbeat":
			// The engine's bound, checked here too so that adapting the
			// config names the line.
			if a.CreditLeaseHeartbeat, err = durationArg(d, "5s"); err == nil && time.Duration(a.CreditLeaseHeartbeat) < time.Second {
				err = d.Errf("credit_lease_heartbeat %s: must be at least 1s", time.Duration(a.CreditLeaseHeartbeat))
			}
		case "skip_migrations":
			a.SkipMigrations, err = true, noMoreArgs(d)
		case "metrics_per_project":
			a.MetricsPerProject, err = true, noMoreArgs(d)
		default:
			err = d.Errf("unknown metering option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseHandler parses the `metering` directive (Handler.UnmarshalCaddyfile)
// and checks it as Provision will.
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	check := *m // provisionSettings fills the working fields; the JSON must not carry them
	if err := check.provisionSettings(); err != nil {
		return nil, h.Errf("%v", err)
	}
	return m, nil
}

// UnmarshalCaddyfile reads the `metering` directive:
//
//	metering [<cost>] {
//		cost <credits>
//		in_flight_lease <duration>|off
//		credit_leases on|off
//		price_by model
//		cost_header <name>
//		buckets <bucket>...              (allowance pool awarded purchased: an ordered subset)
//		unknown_model reject|<credits>
//		max_output_tokens <n>
//		min_output_tokens <n>
//		chat_limit_field max_completion_tokens|max_tokens
//		image_tokens <n>
//		audio_seconds <n>
//		max_request_body <size>
//		max_multipart_body <size>
//		lease <duration>
//		settle_wait <duration>
//		insufficient_status 402|429
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		h.Cost = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch name := d.Val(); name {
		case "cost":
			h.Cost, err = oneArg(d)
		case "in_flight_lease":
			if d.CountRemainingArgs() == 1 && peekArg(d) == "off" {
				d.NextArg()
				h.NoInFlight = true
				break
			}
			h.InFlightLease, err = durationArg(d, "15m, or off")
		case "credit_leases":
			var v string
			if v, err = oneArg(d); err == nil {
				if v != "on" && v != "off" {
					err = d.Errf("credit_leases %q: on or off", v)
				}
				on := v == "on"
				h.CreditLeases = &on
			}
		case "price_by":
			h.PriceBy, err = oneArg(d)
		case "cost_header":
			h.CostHeader, err = oneArg(d)
		case "buckets":
			if h.Buckets = d.RemainingArgs(); len(h.Buckets) == 0 {
				err = d.ArgErr()
			}
		case "unknown_model":
			h.UnknownModel, err = oneArg(d)
		case "max_output_tokens":
			h.MaxOutputTokens, err = countArg(d)
		case "min_output_tokens":
			h.MinOutputTokens, err = countArg(d)
		case "image_tokens":
			h.ImageTokens, err = countArg(d)
		case "audio_seconds":
			h.AudioSeconds, err = countArg(d)
		case "chat_limit_field":
			h.ChatLimitField, err = oneArg(d)
		case "max_request_body":
			h.MaxRequestBody, err = sizeArg(d, "4MiB")
		case "max_multipart_body":
			h.MaxMultipartBody, err = sizeArg(d, "25MiB")
		case "lease":
			h.Lease, err = durationArg(d, "15m")
		case "settle_wait":
			h.SettleWait, err = durationArg(d, "1s")
		case "insufficient_status":
			var v string
			if v, err = oneArg(d); err == nil {
				if h.InsufficientStatus, err = strconv.Atoi(v); err != nil {
					err = d.Errf("insufficient_status %q: 402 or 429", v)
				}
			}
		default:
			err = d.Errf("unknown metering subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseAdminHandler parses the `metering_admin` directive (AdminHandler.UnmarshalCaddyfile).
func parseAdminHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(AdminHandler)
	if err := a.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return a, nil
}

// UnmarshalCaddyfile reads the `metering_admin` directive:
//
//	metering_admin {
//		token     <secret> <name> <admin|viewer>
//		base_path <path>
//		max_import_size <size>   (e.g. 16MiB, 500KB, 1048576)
//		max_reconcile_lag <duration>   (e.g. 60s, 5m)
//		public_url <url>               (e.g. https://gw.example.org)
//		invite_expiry <duration>       (e.g. 7d, 48h; at most 90d)
//		console off                    (no console pages, the API only)
//		session_idle <duration>        (console sign-out after inactivity, default 30m)
//		session_max_age <duration>     (console sign-out after sign-in, default 12h)
//	}
func (a *AdminHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "token":
			args := d.RemainingArgs()
			// An unset optional token ({$VAR} empty) leaves two arguments.
			switch len(args) {
			case 3:
				a.Tokens = append(a.Tokens, AdminToken{Secret: args[0], Name: args[1], Role: args[2]})
			case 2:
				a.Tokens = append(a.Tokens, AdminToken{Name: args[0], Role: args[1]})
			default:
				err = d.Err("token takes <secret> <name> <role>")
			}
		case "base_path":
			a.BasePath, err = oneArg(d)
		case "max_import_size":
			a.MaxImportBytes, err = sizeArg(d, "16MiB")
		case "max_reconcile_lag":
			a.MaxReconcileLag, err = durationArg(d, "60s")
		case "public_url":
			a.PublicURL, err = oneArg(d) // checked when provisioned, placeholders replaced
		case "invite_expiry":
			// The bound is the admin API's too (metering.MaxInviteLifetime):
			// checked here so that adapting the config reports it.
			if a.InviteExpiry, err = durationArg(d, "7d"); err == nil && time.Duration(a.InviteExpiry) > metering.MaxInviteLifetime {
				err = d.Errf("invite_expiry %q: must be a positive duration of at most 90 days, such as 7d", d.Val())
			}
		case "console":
			if !d.NextArg() || d.Val() != "off" {
				return d.Err("console takes one argument: off")
			}
			a.ConsoleOff, err = true, noMoreArgs(d)
		case "session_idle":
			a.SessionIdle, err = durationArg(d, "30m")
		case "session_max_age":
			a.SessionMaxAge, err = durationArg(d, "12h")
		default:
			err = d.Errf("unknown metering_admin subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Argument readers: each reads the arguments of the subdirective the
// dispenser is on, refusing a missing or an extra one.

// noMoreArgs refuses an argument after those read.
func noMoreArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// oneArg reads the subdirective's one argument.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	return d.Val(), noMoreArgs(d)
}

// optionalArg reads at most one argument: an empty value (an unset
// {$VAR}) is reported by Provision, which knows whether it is required.
func optionalArg(d *caddyfile.Dispenser) (string, error) {
	var v string
	if d.NextArg() {
		v = d.Val()
	}
	return v, noMoreArgs(d)
}

// durationArg reads a positive duration (zero would read as the default).
func durationArg(d *caddyfile.Dispenser, example string) (caddy.Duration, error) {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s %q: must be a positive duration such as %s", name, v, example)
	}
	return caddy.Duration(dur), nil
}

// peekArg is the next argument on the line without consuming it.
func peekArg(d *caddyfile.Dispenser) string {
	if !d.NextArg() {
		return ""
	}
	v := d.Val()
	d.Prev()
	return v
}

// countArg reads a positive integer (its upper bound is Provision's).
func countArg(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s %q: must be a positive integer", name, v)
	}
	return n, nil
}

// sizeArg reads a positive byte size ("4MiB", "500KB", "1048576").
func sizeArg(d *caddyfile.Dispenser, example string) (int64, error) {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(v)
	if err != nil || size == 0 || size > math.MaxInt64 {
		return 0, d.Errf("%s %q: must be a positive size such as %s", name, v, example)
	}
	return int64(size), nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*AdminHandler)(nil)
)
