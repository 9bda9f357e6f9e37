package caddymodule

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

var update = flag.Bool("update", false, "rewrite the adapt golden files")

func TestParseHandler(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, cost, err string
	}{
		{in: `metering`, cost: ""},
		{in: `metering 2.5`, cost: "2.5"},
		{in: "metering {\n cost 0.000001\n}", cost: "0.000001"},
		{in: `metering 1 2`, err: "wrong argument count"},
		{in: `metering abc`, err: "cost"},
		{in: `metering 0.0000001`, err: "cost"},
		{in: "metering {\n cost\n}", err: "wrong argument count"},
		{in: "metering {\n bogus\n}", err: "unknown metering subdirective"},
	}
	for _, c := range cases {
		h, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(c.in)})
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.cost, h.(*Handler).Cost, c.in)
	}
}

func TestParseGlobalOption(t *testing.T) {
	t.Parallel()
	v, err := parseGlobalOption(caddyfile.NewTestDispenser(`metering {
		redis redis://r:6379/1
		postgres postgres://p/db
		key_pepper {env.PEPPER}
		key_encryption_key {env.KEK}
		redis_prefix school
		redis_shards 12
		reconciler_consumer gw1
		reconcile_batch 5000
		skip_migrations
		sweep_policy refund
		sweep_interval 30s
		credit_lease_idle 1s
		credit_lease_life 8s
		credit_lease_sweep_grace 20s
		credit_lease_heartbeat 2s
		metrics_per_project
	}`), nil)
	require.NoError(t, err)
	app := v.(httpcaddyfile.App)
	require.Equal(t, "metering", app.Name)
	var got App
	require.NoError(t, json.Unmarshal(app.Value, &got))
	require.Equal(t, App{Redis: "redis://r:6379/1", Postgres: "postgres://p/db", KeyPepper: "{env.PEPPER}",
		KeyEncryptionKey: "{env.KEK}", RedisPrefix: "school", RedisShards: 12, ReconcilerConsumer: "gw1", ReconcileBatch: 5000, SkipMigrations: true,
		SweepPolicy: "refund", SweepInterval: caddy.Duration(30 * time.Second),
		CreditLeaseIdle: caddy.Duration(time.Second), CreditLeaseLife: caddy.Duration(8 * time.Second),
		CreditLeaseSweepGrace: caddy.Duration(20 * time.Second), CreditLeaseHeartbeat: caddy.Duration(2 * time.Second),
		MetricsPerProject: true}, got)
	require.Equal(t, metering.LeaseConfig{Idle: time.Second, Life: 8 * time.Second, SweepGrace: 20 * time.Second,
		Heartbeat: 2 * time.Second}, got.leaseConfig(), "the engine gets the timings")

	for in, msg := range map[string]string{
		"metering {\n bogus 1\n}":                      "unknown metering option",
		"metering {\n redis a b\n}":                    "wrong argument count",
		"metering x":                                   "wrong argument count",
		"metering {\n skip_migrations x\n}":            "wrong argument count",
		"metering {\n metrics_per_project on\n}":       "wrong argument count",
		"metering {\n sweep_policy keep\n}":            "sweep_policy",
		"metering {\n sweep_policy\n}":                 "wrong argument count",
		"metering {\n sweep_interval 0s\n}":            "sweep_interval",
		"metering {\n sweep_interval x\n}":             "sweep_interval",
		"metering {\n sweep_interval 1s 2s\n}":         "wrong argument count",
		"metering {\n reconcile_batch\n}":              "wrong argument count",
		"metering {\n credit_lease_idle 0s\n}":         "credit_lease_idle",
		"metering {\n credit_lease_life -1s\n}":        "credit_lease_life",
		"metering {\n credit_lease_life\n}":            "wrong argument count",
		"metering {\n credit_lease_sweep_grace x\n}":   "credit_lease_sweep_grace",
		"metering {\n credit_lease_heartbeat 500ms\n}": "at least 1s",
		"metering {\n reconcile_batch 1 2\n}":          "wrong argument count",
		"metering {\n reconcile_batch 0\n}":            "reconcile_batch",
		"metering {\n reconcile_batch -5\n}":           "reconcile_batch",
		"metering {\n reconcile_batch 2e4\n}":          "reconcile_batch",
		"metering {\n reconcile_batch 100001\n}":       "from 1 to 100000",
		"metering {\n redis_shards 0\n}":               "redis_shards",
		"metering {\n redis_shards 257\n}":             "from 1 to 256",
	} {
		_, err := parseGlobalOption(caddyfile.NewTestDispenser(in), nil)
		require.ErrorContains(t, err, msg, in)
	}
}

// TestParseReconcileBatch: reconcile_batch takes 1 to 100,000 events; left
// out, the JSON carries nothing and the engine's default (20,000) applies.
func TestParseReconcileBatch(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		"metering {\n redis r\n}":                0,
		"metering {\n reconcile_batch 1\n}":      1,
		"metering {\n reconcile_batch 20000\n}":  20000,
		"metering {\n reconcile_batch 100000\n}": 100000,
	} {
		v, err := parseGlobalOption(caddyfile.NewTestDispenser(in), nil)
		require.NoError(t, err, in)
		var got App
		require.NoError(t, json.Unmarshal(v.(httpcaddyfile.App).Value, &got), in)
		require.Equal(t, want, got.ReconcileBatch, in)
		if want == 0 {
			require.NotContains(t, string(v.(httpcaddyfile.App).Value), "reconcile_batch", in)
		}
	}
	require.Equal(t, 20000, metering.ReconcilerConfig{}.WithDefaults().BatchSize, "the default the README states")
}

func TestParseAdminHandler(t *testing.T) {
	t.Parallel()
	h, err := parseAdminHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`metering_admin {
		token {env.A} ops admin
		token s3cret reports viewer
		base_path /api
		max_import_size 2MiB
		max_reconcile_lag 90s
		public_url https://gw.school.example
		invite_expiry 3d
	}`)})
	require.NoError(t, err)
	a := h.(*AdminHandler)
	require.Equal(t, "/api", a.BasePath)
	require.Equal(t, int64(2<<20), a.MaxImportBytes)
	require.Equal(t, caddy.Duration(90*time.Second), a.MaxReconcileLag)
	raw, err := json.Marshal(a)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"max_reconcile_lag":90000000000`, "the JSON config carries it")
	require.Equal(t, "https://gw.school.example", a.PublicURL)
	require.Equal(t, caddy.Duration(72*time.Hour), a.InviteExpiry)
	require.Contains(t, string(raw), `"public_url":"https://gw.school.example","invite_expiry":259200000000000`)
	for in, want := range map[string]int64{"1048576": 1 << 20, "500KB": 500_000, "16mib": 16 << 20} {
		h, err := parseAdminHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("metering_admin {\n max_import_size " + in + "\n}")})
		require.NoError(t, err, in)
		require.Equal(t, want, h.(*AdminHandler).MaxImportBytes, in)
	}
	require.Equal(t, []AdminToken{{Secret: "{env.A}", Name: "ops", Role: "admin"}, {Secret: "s3cret", Name: "reports", Role: "viewer"}}, a.Tokens)

	for in, msg := range map[string]string{
		"metering_admin {\n token a\n}":                "token takes",
		"metering_admin {\n nope\n}":                   "unknown metering_admin subdirective",
		"metering_admin {\n base_path\n}":              "wrong argument count",
		"metering_admin arg":                           "wrong argument count",
		"metering_admin {\n max_import_size\n}":        "wrong argument count",
		"metering_admin {\n max_import_size lots\n}":   "max_import_size",
		"metering_admin {\n max_import_size 0\n}":      "max_import_size",
		"metering_admin {\n max_import_size 1MB 2\n}":  "wrong argument count",
		"metering_admin {\n max_reconcile_lag\n}":      "wrong argument count",
		"metering_admin {\n max_reconcile_lag soon\n}": "max_reconcile_lag",
		"metering_admin {\n max_reconcile_lag 0s\n}":   "max_reconcile_lag",
		"metering_admin {\n max_reconcile_lag 1m 2\n}": "wrong argument count",
		"metering_admin {\n public_url\n}":             "wrong argument count",
		"metering_admin {\n public_url a b\n}":         "wrong argument count",
		"metering_admin {\n invite_expiry\n}":          "wrong argument count",
		"metering_admin {\n invite_expiry soon\n}":     "invite_expiry",
		"metering_admin {\n invite_expiry 0s\n}":       "invite_expiry",
		"metering_admin {\n invite_expiry 91d\n}":      "invite_expiry",
		"metering_admin {\n invite_expiry 1d 2\n}":     "wrong argument count",
	} {
		_, err := parseAdminHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)})
		require.ErrorContains(t, err, msg, in)
	}
}

// TestAdaptGolden adapts each testdata/*.caddyfile and compares the JSON
// with the .json file beside it (go test -run Adapt -update rewrites them).
func TestAdaptGolden(t *testing.T) {
	t.Setenv("TOLLGATE_LISTEN", "")
	t.Setenv("TOLLGATE_BIND", "")
	os.Unsetenv("TOLLGATE_BIND") // its default, 0.0.0.0, in the golden file
	t.Setenv("TOLLGATE_UPSTREAM", "")
	t.Setenv("TOLLGATE_REDIS_URL", "")
	t.Setenv("TOLLGATE_DATABASE_URL", "")
	files, _ := filepath.Glob("testdata/*.caddyfile")
	files = append(files, "../Caddyfile")
	require.NotEmpty(t, files)
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, f := range files {
		in, err := os.ReadFile(f)
		require.NoError(t, err)
		out, warnings, err := adapter.Adapt(in, map[string]any{"filename": f})
		require.NoError(t, err, f)
		require.Empty(t, warnings, f)
		var pretty map[string]any
		require.NoError(t, json.Unmarshal(out, &pretty))
		got, _ := json.MarshalIndent(pretty, "", "\t")
		golden := "testdata/" + strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)) + ".json"
		if filepath.Base(f) == "Caddyfile" {
			golden = "testdata/root-caddyfile.json"
		}
		if *update {
			require.NoError(t, os.WriteFile(golden, append(got, '\n'), 0o644))
			continue
		}
		want, err := os.ReadFile(golden)
		require.NoError(t, err, "missing golden file; run go test ./caddymodule -run Adapt -update")
		require.JSONEq(t, string(want), string(got), f)
		// The secrets stay placeholders in the adapted config.
		require.NotContains(t, string(got), "TOLLGATE_KEY_PEPPER=")
	}
}

func TestParseHandlerInFlightLease(t *testing.T) {
	t.Parallel()
	h, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("metering 2 {\n in_flight_lease 30m\n}")})
	require.NoError(t, err)
	require.Equal(t, caddy.Duration(30*time.Minute), h.(*Handler).InFlightLease)
	require.Equal(t, "2", h.(*Handler).Cost)
	for _, in := range []string{"metering {\n in_flight_lease\n}", "metering {\n in_flight_lease soon\n}",
		"metering {\n in_flight_lease -1m\n}", "metering {\n in_flight_lease 1m 2m\n}",
		"metering {\n in_flight_lease off 1m\n}"} {
		_, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)})
		require.Error(t, err, in)
	}
	h, err = parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("metering {\n in_flight_lease off\n}")})
	require.NoError(t, err)
	require.True(t, h.(*Handler).NoInFlight)
	require.Zero(t, h.(*Handler).InFlightLease)
}

func TestParseHandlerMetered(t *testing.T) {
	t.Parallel()
	h, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`metering {
		price_by model
		buckets purchased awarded
		unknown_model 0.5
		max_output_tokens 2048
		min_output_tokens 32
		chat_limit_field max_tokens
		image_tokens 1200
		audio_seconds 120
		max_request_body 8MiB
		max_multipart_body 30MiB
		lease 5m
		settle_wait 250ms
		insufficient_status 429
	}`)})
	require.NoError(t, err)
	require.Equal(t, &Handler{PriceBy: "model", Buckets: []string{"purchased", "awarded"}, UnknownModel: "0.5",
		MaxOutputTokens: 2048, MinOutputTokens: 32, ChatLimitField: "max_tokens", ImageTokens: 1200, AudioSeconds: 120,
		MaxRequestBody: 8 << 20, MaxMultipartBody: 30 << 20, Lease: caddy.Duration(5 * time.Minute),
		SettleWait: caddy.Duration(250 * time.Millisecond), InsufficientStatus: 429}, h)

	h, err = parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("metering 3 {\n cost_header X-Upstream-Cost\n unknown_model reject\n}")})
	require.NoError(t, err)
	require.Equal(t, &Handler{Cost: "3", CostHeader: "X-Upstream-Cost", UnknownModel: "reject"}, h)

	for in, msg := range map[string]string{
		"metering {\n price_by\n}":                               "wrong argument count",
		"metering {\n price_by route\n}":                         "price_by",
		"metering {\n price_by model model\n}":                   "wrong argument count",
		"metering {\n cost_header\n}":                            "wrong argument count",
		"metering {\n cost_header A B\n}":                        "wrong argument count",
		"metering {\n price_by model\n cost_header X\n}":         "exclude each other",
		"metering {\n price_by model\n buckets\n}":               "wrong argument count",
		"metering {\n price_by model\n buckets wallet\n}":        "buckets",
		"metering {\n price_by model\n unknown_model\n}":         "wrong argument count",
		"metering {\n price_by model\n unknown_model free\n}":    "unknown_model",
		"metering {\n price_by model\n unknown_model -1\n}":      "unknown_model",
		"metering {\n price_by model\n max_output_tokens 0\n}":   "max_output_tokens",
		"metering {\n price_by model\n max_output_tokens x\n}":   "max_output_tokens",
		"metering {\n price_by model\n max_output_tokens\n}":     "wrong argument count",
		"metering {\n price_by model\n audio_seconds -5\n}":      "audio_seconds",
		"metering {\n price_by model\n max_request_body lots\n}": "max_request_body",
		"metering {\n price_by model\n max_multipart_body 0\n}":  "max_multipart_body",
		"metering {\n price_by model\n min_output_tokens 0\n}":   "min_output_tokens",
		"metering {\n price_by model\n image_tokens x\n}":        "image_tokens",
		"metering {\n price_by model\n chat_limit_field n\n}":    "chat_limit_field",
		"metering {\n price_by model\n chat_limit_field\n}":      "wrong argument count",
		"metering {\n min_output_tokens 5\n}":                    "need price_by",
		"metering {\n price_by model\n lease\n}":                 "wrong argument count",
		"metering {\n price_by model\n lease soon\n}":            "lease",
		"metering {\n price_by model\n lease 1m 2m\n}":           "wrong argument count",
		"metering {\n buckets pool\n}":                           "need price_by",
		"metering {\n lease 1m\n}":                               "need price_by",
		"metering {\n price_by model\n settle_wait\n}":           "wrong argument count",
		"metering {\n price_by model\n settle_wait 0s\n}":        "settle_wait",
		"metering {\n price_by model\n settle_wait soon\n}":      "settle_wait",
		"metering {\n settle_wait 1s\n}":                         "need price_by",
		"metering {\n insufficient_status\n}":                    "wrong argument count",
		"metering {\n insufficient_status 403\n}":                "insufficient_status",
		"metering {\n insufficient_status 429 402\n}":            "wrong argument count",
	} {
		_, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)})
		require.ErrorContains(t, err, msg, in)
	}
}

func TestProvisionVariableCostChecks(t *testing.T) {
	t.Parallel()
	ok := []Handler{{}, {PriceBy: "model"}, {CostHeader: "X-Cost", Cost: "2"}, {PriceBy: "model", UnknownModel: "0.25", Buckets: []string{"pool"}}}
	for _, h := range ok {
		require.NoError(t, h.provisionVariableCost(), "%+v", h)
	}
	bad := []Handler{{PriceBy: "route"}, {PriceBy: "model", CostHeader: "X"}, {Buckets: []string{"pool"}},
		{PriceBy: "model", UnknownModel: "x"}, {PriceBy: "model", MaxOutputTokens: -1}, {PriceBy: "model", Lease: -1},
		{PriceBy: "model", MaxRequestBody: -1}, {PriceBy: "model", MaxMultipartBody: -1}, {PriceBy: "model", ChatLimitField: "n"},
		{PriceBy: "model", MinOutputTokens: -1}, {PriceBy: "model", ImageTokens: -1}, {MinOutputTokens: 5},
		{PriceBy: "model", SettleWait: -1}, {SettleWait: caddy.Duration(time.Second)}}
	for _, h := range bad {
		require.Error(t, h.provisionVariableCost(), "%+v", h)
	}
	h := Handler{PriceBy: "model"}
	require.NoError(t, h.provisionVariableCost())
	require.True(t, h.unknown.Reject, "unknown models are refused by default")
	require.Equal(t, int64(4<<20), h.maxBody, "JSON bodies: 4 MiB by default")
	require.Equal(t, int64(25<<20), h.maxMultipart, "uploads: 25 MiB by default")
	require.Equal(t, int64(defaultMinOutput), h.minOutput)
	require.Equal(t, "max_completion_tokens", h.estimateCfg.ChatLimitField)
	require.Equal(t, DefaultSettleWait, h.settleWait)
}

// insufficient_status applies to every route, fixed cost included; a
// status other than 402 or 429 in JSON config is refused at Provision.
func TestParseHandlerInsufficientStatus(t *testing.T) {
	t.Parallel()
	h, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("metering 1 {\n insufficient_status 402\n}")})
	require.NoError(t, err)
	require.Equal(t, &Handler{Cost: "1", InsufficientStatus: 402}, h)
	for _, status := range []int{200, 403, 500} {
		err := (&Handler{InsufficientStatus: status}).Provision(caddy.Context{})
		require.ErrorContains(t, err, "insufficient_status", status)
	}
}

// The Caddyfile holds a handler to Provision's rules, no more and no less:
// what UnmarshalCaddyfile reads is refused at adapt time exactly when
// Provision would refuse it. (The two used to check separately and
// disagreed: a negative cost passed the Caddyfile, and token counts above
// 2^31 were refused by it but not by a JSON config.)
func TestParseHandlerChecksAsProvision(t *testing.T) {
	t.Parallel()
	for in, bad := range map[string]bool{
		"metering -1": true,
		"metering 0":  false,
		"metering {\n cost 0.5\n price_by model\n}":                        false,
		"metering {\n price_by model\n max_output_tokens 3000000000\n}":    false,
		"metering {\n price_by model\n max_output_tokens 1099511627777\n}": true,
		"metering {\n price_by model\n audio_seconds 2147483649\n}":        true,
		"metering {\n price_by model\n buckets pool pool\n}":               true,
		"metering {\n cost_header X-Cost\n unknown_model 1.5\n}":           false,
		"metering {\n insufficient_status 401\n}":                          true,
	} {
		var m Handler
		require.NoError(t, m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)), in)
		provisionErr := m.provisionSettings()
		require.Equal(t, bad, provisionErr != nil, "%s: %v", in, provisionErr)
		_, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)})
		if bad {
			require.ErrorContains(t, err, provisionErr.Error(), in)
			require.ErrorContains(t, err, "Testfile:", "the error names the line: %s", in)
		} else {
			require.NoError(t, err, in)
		}
	}
}

// in_flight_lease off takes no duration and applies to fixed-cost routes
// only: reservations are always tracked. Refused at Provision.
func TestProvisionNoInFlight(t *testing.T) {
	t.Parallel()
	for _, h := range []*Handler{{NoInFlight: true, InFlightLease: caddy.Duration(time.Minute)},
		{NoInFlight: true, PriceBy: "model"}, {NoInFlight: true, CostHeader: "X-Cost"}} {
		require.ErrorContains(t, h.provisionSettings(), "in_flight_lease", "%+v", h)
	}
}

func TestParseHandlerCreditLeases(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{"metering {\n credit_leases on\n}": true, "metering {\n credit_leases off\n}": false} {
		h, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)})
		require.NoError(t, err, in)
		require.NotNil(t, h.(*Handler).CreditLeases, in)
		require.Equal(t, want, *h.(*Handler).CreditLeases, in)
	}
	for _, in := range []string{"metering {\n credit_leases\n}", "metering {\n credit_leases yes\n}",
		"metering {\n credit_leases on off\n}", "metering {\n credit_leases on\n price_by model\n}",
		"metering {\n credit_leases on\n in_flight_lease off\n}", "metering {\n credit_leases on\n in_flight_lease 1m\n}"} {
		_, err := parseHandler(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(in)})
		require.Error(t, err, in)
	}
}

// Credit leases are the default of a fixed-cost route; a route that asks
// for in-flight tracking or untracked charges, or reserves, has none.
func TestProvisionCreditLeasesDefault(t *testing.T) {
	t.Parallel()
	off := false
	for _, c := range []struct {
		h      *Handler
		leased bool
	}{
		{&Handler{}, true},
		{&Handler{Cost: "2"}, true},
		{&Handler{CreditLeases: &off}, false},
		{&Handler{InFlightLease: caddy.Duration(time.Minute)}, false},
		{&Handler{NoInFlight: true}, false},
		{&Handler{PriceBy: "model"}, false},
		{&Handler{CostHeader: "X-Cost"}, false},
	} {
		require.NoError(t, c.h.provisionSettings(), "%+v", c.h)
		require.Equal(t, c.leased, c.h.leased, "%+v", c.h)
	}
}
