package caddymodule

import (
	"math"
	"strconv"

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

// parseGlobalOption parses the `metering` global option:
//
//	metering {
//		redis               <url>
//		postgres            <url>
//		key_pepper          <secret>
//		key_encryption_key  <base64 of 32 bytes>
//		redis_prefix        <name>
//		reconciler_consumer <name>
//		skip_migrations
//		sweep_policy        charge|refund
//		sweep_interval      <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		var target *string
		switch d.Val() {
		case "redis":
			target = &app.Redis
		case "postgres":
			target = &app.Postgres
		case "key_pepper":
			target = &app.KeyPepper
		case "key_encryption_key":
			target = &app.KeyEncryptionKey
		case "redis_prefix":
			target = &app.RedisPrefix
		case "reconciler_consumer":
			target = &app.ReconcilerConsumer
		case "sweep_policy":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			if v := d.Val(); v != "charge" && v != "refund" {
				return nil, d.Errf("sweep_policy %q: charge or refund", v)
			}
			app.SweepPolicy = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			continue
		case "sweep_interval":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return nil, d.Errf("sweep_interval %q: must be a positive duration such as 30s", d.Val())
			}
			app.SweepInterval = caddy.Duration(dur)
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			continue
		case "skip_migrations":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			app.SkipMigrations = true
			continue
		default:
			return nil, d.Errf("unknown metering option %q", d.Val())
		}
		// An empty value (an unset {$VAR}) is allowed here and reported by
		// Provision, which knows whether the setting is required.
		if d.NextArg() {
			*target = d.Val()
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	return httpcaddyfile.App{Name: "metering", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseHandler parses the `metering` directive:
//
//	metering [<cost>] {
//		cost <credits>
//		in_flight_lease <duration>|off
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
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	h.Next() // the directive name
	setCost := func() error {
		if _, err := metering.ParseCredits(h.Val()); err != nil {
			return h.Errf("cost %q: %v", h.Val(), err)
		}
		m.Cost = h.Val()
		return nil
	}
	if h.NextArg() {
		if err := setCost(); err != nil {
			return nil, err
		}
	}
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	for h.NextBlock(0) {
		switch h.Val() {
		case "cost":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			if err := setCost(); err != nil {
				return nil, err
			}
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "in_flight_lease":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			if h.Val() == "off" {
				m.NoInFlight = true
				if h.NextArg() {
					return nil, h.ArgErr()
				}
				continue
			}
			d, err := caddy.ParseDuration(h.Val())
			if err != nil || d <= 0 {
				return nil, h.Errf("in_flight_lease %q: must be a positive duration such as 15m, or off", h.Val())
			}
			m.InFlightLease = caddy.Duration(d)
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "price_by":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			if h.Val() != "model" {
				return nil, h.Errf("price_by %q: only \"model\" is supported", h.Val())
			}
			m.PriceBy = h.Val()
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "cost_header":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			m.CostHeader = h.Val()
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "buckets":
			m.Buckets = h.RemainingArgs()
			if len(m.Buckets) == 0 {
				return nil, h.ArgErr()
			}
			if _, err := metering.ParseBucketOrder(m.Buckets); err != nil {
				return nil, h.Errf("buckets: %v", err)
			}
		case "unknown_model":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			if h.Val() != "reject" {
				if c, err := metering.ParseCredits(h.Val()); err != nil || c < 0 {
					return nil, h.Errf("unknown_model %q: reject or a credit amount", h.Val())
				}
			}
			m.UnknownModel = h.Val()
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "max_output_tokens", "min_output_tokens", "image_tokens", "audio_seconds":
			name := h.Val()
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			n, err := strconv.ParseInt(h.Val(), 10, 64)
			if err != nil || n <= 0 || n > 1<<31 {
				return nil, h.Errf("%s %q: must be a positive integer", name, h.Val())
			}
			*map[string]*int64{"max_output_tokens": &m.MaxOutputTokens, "min_output_tokens": &m.MinOutputTokens,
				"image_tokens": &m.ImageTokens, "audio_seconds": &m.AudioSeconds}[name] = n
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "chat_limit_field":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			if v := h.Val(); v != "max_completion_tokens" && v != "max_tokens" {
				return nil, h.Errf("chat_limit_field %q: max_completion_tokens or max_tokens", v)
			}
			m.ChatLimitField = h.Val()
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "max_request_body", "max_multipart_body":
			name := h.Val()
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			size, err := humanize.ParseBytes(h.Val())
			if err != nil || size == 0 || size > math.MaxInt64 {
				return nil, h.Errf("%s %q: must be a positive size such as 4MiB", name, h.Val())
			}
			if name == "max_request_body" {
				m.MaxRequestBody = int64(size)
			} else {
				m.MaxMultipartBody = int64(size)
			}
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "lease", "settle_wait":
			name := h.Val()
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			d, err := caddy.ParseDuration(h.Val())
			if err != nil || d <= 0 {
				return nil, h.Errf("%s %q: must be a positive duration such as %s", name, h.Val(),
					map[string]string{"lease": "15m", "settle_wait": "1s"}[name])
			}
			*map[string]*caddy.Duration{"lease": &m.Lease, "settle_wait": &m.SettleWait}[name] = caddy.Duration(d)
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "insufficient_status":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			switch h.Val() {
			case "402", "429":
				m.InsufficientStatus, _ = strconv.Atoi(h.Val())
			default:
				return nil, h.Errf("insufficient_status %q: 402 or 429", h.Val())
			}
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		default:
			return nil, h.Errf("unknown metering subdirective %q", h.Val())
		}
	}
	if m.PriceBy != "" && m.CostHeader != "" {
		return nil, h.Err("price_by and cost_header exclude each other")
	}
	if m.PriceBy == "" && m.CostHeader == "" && (len(m.Buckets) > 0 || m.UnknownModel != "" || m.Lease != 0 || m.SettleWait != 0 || m.hasEstimateOptions()) {
		return nil, h.Err("buckets, unknown_model, lease, settle_wait and the estimate's options (max_output_tokens, min_output_tokens, " +
			"chat_limit_field, image_tokens, audio_seconds, max_request_body, max_multipart_body) need price_by model or cost_header")
	}
	return m, nil
}

// parseAdminHandler parses the `metering_admin` directive:
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
func parseAdminHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(AdminHandler)
	h.Next()
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	for h.NextBlock(0) {
		switch h.Val() {
		case "token":
			args := h.RemainingArgs()
			// An unset optional token ({$VAR} empty) leaves two arguments.
			switch len(args) {
			case 3:
				a.Tokens = append(a.Tokens, AdminToken{Secret: args[0], Name: args[1], Role: args[2]})
			case 2:
				a.Tokens = append(a.Tokens, AdminToken{Name: args[0], Role: args[1]})
			default:
				return nil, h.Err("token takes <secret> <name> <role>")
			}
		case "base_path":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			a.BasePath = h.Val()
		case "max_import_size":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			size, err := humanize.ParseBytes(h.Val())
			if err != nil || size == 0 || size > math.MaxInt64 {
				return nil, h.Errf("max_import_size %q: must be a positive size such as 16MiB", h.Val())
			}
			a.MaxImportBytes = int64(size)
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "max_reconcile_lag":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			d, err := caddy.ParseDuration(h.Val())
			if err != nil || d <= 0 {
				return nil, h.Errf("max_reconcile_lag %q: must be a positive duration such as 60s", h.Val())
			}
			a.MaxReconcileLag = caddy.Duration(d)
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "public_url":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			a.PublicURL = h.Val() // checked when provisioned, placeholders replaced
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "invite_expiry":
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			d, err := caddy.ParseDuration(h.Val())
			if err != nil || d <= 0 || d > metering.MaxInviteLifetime {
				return nil, h.Errf("invite_expiry %q: must be a positive duration of at most 90 days, such as 7d", h.Val())
			}
			a.InviteExpiry = caddy.Duration(d)
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "console":
			if !h.NextArg() || h.Val() != "off" {
				return nil, h.Err("console takes one argument: off")
			}
			a.ConsoleOff = true
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		case "session_idle", "session_max_age":
			name := h.Val()
			if !h.NextArg() {
				return nil, h.ArgErr()
			}
			d, err := caddy.ParseDuration(h.Val())
			if err != nil || d <= 0 {
				return nil, h.Errf("%s %q: must be a positive duration such as 30m", name, h.Val())
			}
			if name == "session_idle" {
				a.SessionIdle = caddy.Duration(d)
			} else {
				a.SessionMaxAge = caddy.Duration(d)
			}
			if h.NextArg() {
				return nil, h.ArgErr()
			}
		default:
			return nil, h.Errf("unknown metering_admin subdirective %q", h.Val())
		}
	}
	return a, nil
}
