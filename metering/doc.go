// Package metering is Tollgate's core, without Caddy: balances in Redis,
// changed only by Lua scripts that append each change's event to one
// stream, and recorded by the reconciler in the Postgres ledger. Money is
// int64 micro-credits (Credits), never a float.
//
// A map of the package, by concern (docs/architecture.md says why it works
// as it does):
//
// Engine and types
//   - engine.go: Config, Engine, NewEngine.
//   - credits.go, bucket.go, period.go: Credits; the four buckets and a
//     route's order of them; allowance periods.
//   - project_user_types.go: Project, User, UserView, Balances, APIKeyInfo.
//   - errors.go, refusal.go, sentence.go: the error kinds the admin API
//     maps to statuses, refusals as sentences, InvalidError.
//   - event.go, eventid.go: the event as the scripts append it; event ids.
//     event_pack.go: packed stream entries, many events in one (a credit
//     lease's flush), and how they are read back.
//
// The gateway's path (per request)
//   - apikey.go, keycheck.go, key_status.go: keys and their hashes.
//   - usercache.go, load.go (load.lua): the key → user cache; loading a
//     user, a project and the key index from Postgres into Redis.
//   - charge.go (fixed_charge.go: fixed_charge.lua, fixed and tracked): a
//     fixed-cost charge, the waterfall.
//   - reserve.go, settle.go, cancel.go (reserve_script.go: reserve.lua;
//     settle.lua, renew.lua, cancel_*.lua): variable cost, reserve then
//     settle; SettleEventually retries when Redis is away.
//   - lease.go (ChargeLeased; lease_scripts.go: lease_take.lua,
//     lease_flush.lua, lease_end.lua), lease_table.go (the gateway's
//     leases, their flushes and endings), lease_gateway.go (heartbeat,
//     recalls: gateway_heartbeat.lua, recall.lua), lease_keys.go,
//     lease_sweep.go, lease_heal.go: per-gateway credit leases, a
//     fixed-cost route's requests admitted from memory.
//   - inflight.go (release.lua, inflight_count.lua): requests in flight.
//   - price.go, price_cache.go (price_version.lua): model prices.
//   - rediskeys.go, cluster_slot.go, lease_keys.go: every Redis key, in
//     shards (one hash tag each, spread over a Redis Cluster's slots);
//     layout.go moves the keys when the shard count changes.
//   - runner.go: names for the pipelined script runner, which lives in
//     internal/scriptrun (batching, EVAL on NOSCRIPT, no go-redis
//     retries, the fence check; tested there). rediskeys.go also has
//     mustScript/mustScriptWithPrelude, which embed each script
//     (declared beside the Go that calls it, the shared ones here).
//   - One script per operation: each money script has a fixed layout and
//     a Go file <script>_script.go (fixed_charge.go for the charge) with
//     its xxxArgs struct (a field per KEYS/ARGV position), fill and
//     parseXxxAnswer, which refuses shapes the script never gives.
//     prelude.lua holds the balance rules and event helpers they share,
//     joined in front of each at load time. script_fields.go: the status
//     codes, hash fields and event fields the scripts and Go agree on.
//
// Admin operations (Engine methods the admin API calls)
//   - ops_users.go, user_patch.go (patch_user.lua), user_delete.go
//     (delete_user.lua), user_reveal.go, user_list.go,
//     user_list_balance.go: users.
//   - ops_projects.go, ops_project_changes.go, ops_refresh_project.go:
//     projects; RefreshProject (the API's "settle") writes due refills.
//   - ops_money.go (adjust_user_script.go: adjust_user.lua, and
//     adjust_pool_script.go: adjust_pool.lua), ops_transfer.go
//     (transfer.lua): balance adjustments and transfers, each recalling
//     the credit leases of whom it changes; transfer_shards.go
//     (transfer_step.lua, store_transfers.go): transfers between users in
//     different shards, in idempotent steps; move_shards.go (move_out.lua,
//     move_in.lua, move_undo.lua, store_moves.go): a user's move to a
//     project in another shard; failpoint.go: where a crash test kills
//     the process;
//     peek.go (peek_script.go: peek.lua): live balances for admin reads;
//     ops_refresh_project.go runs refresh_script.go (refresh.lua).
//     grants.go, grant_month.go: monthly grants; parked.go: what a user
//     leaves in a project it moves out of.
//   - ops_prices.go, ops_audit.go, invites.go, invite_token.go,
//     import_*.go, usage.go, report_unusual.go: prices, audit log,
//     invites, CSV import, usage and unusual-usage reports.
//
// Background work
//   - reconciler.go (ack.lua), reconcile_read.go (the stream read without
//     per-entry maps), deadletter.go (deadletter.lua): stream to
//     Postgres in batches counted in events (a packed entry holds many;
//     reconcile_decode.go turns entries into events),
//     and entries, or events of packed ones, it can never record.
//   - sweeper.go: settles reservations whose lease ran out, and ends the
//     credit leases of gateways that died (lease_sweep.go).
//   - fence.go, heal.go (checkpoint.lua, heal_balances.lua,
//     restore_reservation.lua): a Redis that restarted is fenced off and
//     healed from the ledger.
//   - repairs.go: Redis work retried until done; health.go; migrate.go;
//     background.go: the start/stop lifecycle the reconciler and the
//     sweeper share.
//   - metrics.go, metrics_histogram.go: counters and histograms the
//     engine keeps when Config.Metrics is set (caddymodule exports them).
//
// Postgres: the store_*.go files hold the SQL, one per table or concern
// (store_users.go, store_projects.go, store_keys.go, store_prices.go,
// store_audit.go, store_invites.go, store_import.go, store_user_list.go,
// store_usage.go, store_report_unusual.go; store_events.go the ledger's
// inserts, store_events_copy.go their binary COPY rows,
// store_event_deltas.go the balances, parked allowances and rollup rows
// new events change). The exceptions keep their queries beside the only
// code that runs them: the healer's reads of the ledger (heal.go,
// lease_heal.go), the advisory locks of the healer and the sweeper, and
// migrate.go.
// Texts and names: text.go, name_problem.go, plural.go.
// Tests share one fixture, world (world_test.go); meteringtest builds
// isolated Redis and Postgres state for them and for other packages.
package metering
