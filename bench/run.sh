#!/usr/bin/env bash
# `make bench`: what does metering cost? One gateway (bench/Caddyfile) serves
# the same route to the demo upstream three times: plain on :18081, metered
# at a fixed cost on :18082, metered by price (reserve + settle, model "demo"
# priced through the admin API) on :18084; wrk loads /bench on each (a POST
# with a chat body on the priced port), at 64 connections (throughput) and at
# 1 connection (latency), with the order alternating between rounds. The table
# goes to the terminal and to bench/results/latest.txt.
#
# Environment (defaults):
#   BENCH_DURATION=15s       length of each measured wrk run
#   BENCH_WARMUP=5s          warm-up run on each port before measuring
#   BENCH_ROUNDS=2           rounds; each measures all four runs, order alternating
#   BENCH_CONNECTIONS=64     BENCH_THREADS=2     for the throughput runs
#   BENCH_REDIS_URL=redis://127.0.0.1:6379/15    (FLUSHDB'd first!)
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench?sslmode=disable
#                            (dropped and re-created first when its name contains "bench")
#   BENCH_MAX_SECONDS=1800   hard limit for the whole script, build included
#   TOLLGATE_BIN, BENCH_CADDYFILE, BENCH_SKIP_BUILD=1   to bench other binaries/configs
#
# Everything it starts is stopped when it exits, whatever the reason.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

BENCH_MAX_SECONDS="${BENCH_MAX_SECONDS:-1800}"
# Bound the whole run: re-run this script under timeout(1) once. --foreground
# sends TERM to this script only; its trap then stops what it started.
if [[ -z "${TOLLGATE_BENCH_TIMED:-}" ]] && command -v timeout >/dev/null 2>&1; then
	export TOLLGATE_BENCH_TIMED=1
	rc=0
	timeout --foreground --kill-after=60 "$BENCH_MAX_SECONDS" bash "$ROOT/bench/run.sh" "$@" || rc=$?
	[[ "$rc" -eq 124 ]] && echo "bench/run.sh: stopped after BENCH_MAX_SECONDS=${BENCH_MAX_SECONDS}s" >&2
	exit "$rc"
fi

BENCH_DURATION="${BENCH_DURATION:-15s}"
BENCH_WARMUP="${BENCH_WARMUP:-5s}"
BENCH_ROUNDS="${BENCH_ROUNDS:-2}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-64}"
BENCH_THREADS="${BENCH_THREADS:-2}"
BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}"
BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tollgate_bench?sslmode=disable}"
BIN="${TOLLGATE_BIN:-$ROOT/bin/tollgate}"
CONFIG="${BENCH_CADDYFILE:-$ROOT/bench/Caddyfile}"

PLAIN_PORT=18081
METERED_PORT=18082
ADMIN_PORT=18083
PRICED_PORT=18084
# What the priced port is sent: a small chat request for the priced model.
PRICED_BODY='{"model":"demo","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}'
UPSTREAM=127.0.0.1:19090

RESULTS="$ROOT/bench/results"
RAW="$RESULTS/raw"
GW_LOG="$RESULTS/gateway.log"
UP_LOG="$RESULTS/demo-upstream.log"

[[ "$BENCH_ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, not '$BENCH_ROUNDS'"
for d in "$BENCH_DURATION" "$BENCH_WARMUP"; do
	[[ "$d" =~ ^[1-9][0-9]*[smh]?$ ]] || die "durations look like 15s, 2m or 30 (seconds); got '$d'"
done
[[ -f "$CONFIG" ]] || die "no Caddyfile at $CONFIG"

# ---------------------------------------------------------------------------
# Cleanup

GW_PID="" UP_PID="" WRK_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n "$WRK_PID" ]] && kill "$WRK_PID" 2>/dev/null
	[[ -n "$GW_PID" ]] && stop_pid "$GW_PID" gateway
	[[ -n "$UP_PID" ]] && stop_pid "$UP_PID" demo-upstream
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Preparation

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
	build_binaries
fi
[[ -x "$BIN" ]] || die "$BIN is missing: run make build"
[[ -x "$ROOT/bin/demo-upstream" ]] || die "bin/demo-upstream is missing: run make build"
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v wrk >/dev/null 2>&1 || die "wrk is not installed"
command -v curl >/dev/null 2>&1 || apt_install curl

for port in "$PLAIN_PORT" "$METERED_PORT" "$ADMIN_PORT" "$PRICED_PORT" "${UPSTREAM##*:}"; do
	if tcp_open 127.0.0.1 "$port"; then
		die "port $port on 127.0.0.1 is in use (another bench still running?); the benchmark needs 18081-18084 and 19090"
	fi
done

TOLLGATE_REDIS_URL="$BENCH_REDIS_URL" TOLLGATE_DATABASE_URL="$BENCH_DATABASE_URL" \
	"$ROOT/scripts/services.sh" ensure

# A clean slate: the bench Redis database and the bench PostgreSQL database.
parse_redis_url "$BENCH_REDIS_URL"
if [[ "$R_DB" == 0 && "${BENCH_ALLOW_FLUSH_DB0:-0}" != 1 ]]; then
	die "BENCH_REDIS_URL uses Redis database 0, which bench/run.sh would FLUSHDB; use another database (default 15) or set BENCH_ALLOW_FLUSH_DB0=1"
fi
log "bench: FLUSHDB on $(mask_url "$BENCH_REDIS_URL")"
reply="$(redis_cmd "$BENCH_REDIS_URL" flushdb)"
[[ "$reply" == "+OK" ]] || die "FLUSHDB on $(mask_url "$BENCH_REDIS_URL") failed: ${reply#-}"

parse_pg_url "$BENCH_DATABASE_URL"
if [[ "$P_DB" == *bench* ]]; then
	log "bench: re-creating database $P_DB"
	maint_url="$(pg_url_with_db "$BENCH_DATABASE_URL" postgres)"
	PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 -d "$maint_url" \
		-c "DROP DATABASE IF EXISTS \"$P_DB\" WITH (FORCE)" -c "CREATE DATABASE \"$P_DB\"" ||
		die "could not re-create database $P_DB"
else
	warn "database $P_DB is not named like a bench database; using it as it is"
fi
log "bench: applying migrations"
TOLLGATE_DATABASE_URL="$BENCH_DATABASE_URL" "$BIN" migrate || die "migrations failed on $(mask_url "$BENCH_DATABASE_URL")"

# Fresh secrets for every run; nothing to keep.
export TOLLGATE_REDIS_URL="$BENCH_REDIS_URL"
export TOLLGATE_DATABASE_URL="$BENCH_DATABASE_URL"
TOLLGATE_ADMIN_TOKEN="$(random_hex 24)"
TOLLGATE_KEY_PEPPER="$(random_hex 32)"
export TOLLGATE_ADMIN_TOKEN TOLLGATE_KEY_PEPPER
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT/admin/v1"
ADMIN_TOKEN="$TOLLGATE_ADMIN_TOKEN"

mkdir -p "$RESULTS"
rm -rf "$RAW"
mkdir -p "$RAW"

# ---------------------------------------------------------------------------
# Upstream and gateway

"$ROOT/bin/demo-upstream" -listen "$UPSTREAM" >"$UP_LOG" 2>&1 &
UP_PID=$!
wait_http "http://$UPSTREAM/bench" 10 "$UP_PID" "$UP_LOG"

log "bench: starting the gateway with ${CONFIG#"$ROOT"/} (log ${GW_LOG#"$ROOT"/})"
"$BIN" run --config "$CONFIG" --adapter caddyfile >"$GW_LOG" 2>&1 &
GW_PID=$!
wait_http "$ADMIN_URL/health" 60 "$GW_PID" "$GW_LOG"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ADMIN_URL/health" || true)"
[[ "$code" == 200 ]] || die "$ADMIN_URL/health answers HTTP $code, not 200 (log: $GW_LOG)"

ensure_admin_user \
	'{"name":"bench","allowance":{"amount":100,"period":"daily","timezone":"UTC"},"pool":{"enabled":true,"balance":0}}' \
	bench-user \
	'{"username":"bench-user","project":"bench","initial_credits":1000000000}'
KEY="$API_KEY"
ensure_price demo '{"input_per_million":1,"output_per_million":2}'

# Both routes must answer before anything is measured; the metered one must
# also refuse a request without a key, or the comparison means nothing.
WARNINGS=()
for port in "$PLAIN_PORT" "$METERED_PORT"; do
	code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $KEY" "http://127.0.0.1:$port/bench" || true)"
	[[ "$code" == 200 ]] || die "GET http://127.0.0.1:$port/bench with the bench key answers HTTP $code, not 200 (log: $GW_LOG)"
done
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
	-d "$PRICED_BODY" "http://127.0.0.1:$PRICED_PORT/bench" || true)"
[[ "$code" == 200 ]] || die "POST http://127.0.0.1:$PRICED_PORT/bench with the bench key answers HTTP $code, not 200 (log: $GW_LOG)"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$METERED_PORT/bench" || true)"
if [[ "$code" != 401 ]]; then
	WARNINGS+=("the metered port answered HTTP $code without an API key (expected 401): is metering really on?")
	warn "${WARNINGS[-1]}"
fi

# ---------------------------------------------------------------------------
# Load

# run_wrk NAME PORT CONNS THREADS DURATION: one wrk run; its output goes to
# $RAW/NAME.txt and its BENCH_RESULT line to $RAW/results.txt. The priced
# port gets POSTs with PRICED_BODY.
run_wrk() {
	local name="$1" port="$2" conns="$3" threads="$4" dur="$5" out line body=""
	out="$RAW/$name.txt"
	[[ "$port" == "$PRICED_PORT" ]] && body="$PRICED_BODY"
	log "bench: $name: wrk -t$threads -c$conns -d$dur http://127.0.0.1:$port/bench"
	BENCH_BODY="$body" BENCH_LABEL="$name" wrk -t "$threads" -c "$conns" -d "$dur" --timeout 5s \
		-s "$ROOT/bench/report.lua" -H "Authorization: Bearer $KEY" \
		"http://127.0.0.1:$port/bench" >"$out" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || {
		cat "$out" >&2
		die "wrk failed ($name)"
	}
	WRK_PID=""
	line="$(grep '^BENCH_RESULT ' "$out")" || {
		cat "$out" >&2
		die "wrk printed no BENCH_RESULT line ($name)"
	}
	printf '%s\n' "$line" >>"$RAW/results.txt"
}

log "bench: warm-up ($BENCH_WARMUP per port)"
run_wrk warmup-plain "$PLAIN_PORT" "$BENCH_CONNECTIONS" "$BENCH_THREADS" "$BENCH_WARMUP"
run_wrk warmup-metered "$METERED_PORT" "$BENCH_CONNECTIONS" "$BENCH_THREADS" "$BENCH_WARMUP"
run_wrk warmup-priced "$PRICED_PORT" "$BENCH_CONNECTIONS" "$BENCH_THREADS" "$BENCH_WARMUP"

for ((round = 1; round <= BENCH_ROUNDS; round++)); do
	if ((round % 2 == 1)); then order=(plain metered priced); else order=(priced metered plain); fi
	for target in "${order[@]}"; do
		port="$PLAIN_PORT"
		[[ "$target" == metered ]] && port="$METERED_PORT"
		[[ "$target" == priced ]] && port="$PRICED_PORT"
		run_wrk "r$round-$target-c$BENCH_CONNECTIONS" "$port" "$BENCH_CONNECTIONS" "$BENCH_THREADS" "$BENCH_DURATION"
	done
	# The latency runs go the other way round within the round.
	for ((i = ${#order[@]} - 1; i >= 0; i--)); do
		target="${order[i]}"
		port="$PLAIN_PORT"
		[[ "$target" == metered ]] && port="$METERED_PORT"
		[[ "$target" == priced ]] && port="$PRICED_PORT"
		run_wrk "r$round-$target-c1" "$port" 1 1 "$BENCH_DURATION"
	done
done

# ---------------------------------------------------------------------------
# Report

admin_call GET users/bench-user
AFTER="HTTP $HTTP_CODE ${HTTP_BODY:0:600}"

REPORT="$RESULTS/latest.txt"
{
	printf 'Tollgate benchmark, %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf 'commit %s, %s, %s cores, %s\n' \
		"$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
		"$("${GO:-go}" version 2>/dev/null | awk '{print $3}' || echo go?)" "$(nproc)" "$(wrk --version 2>&1 | head -n 1 | awk '{print $1, $2}')"
	printf '/bench via one gateway: plain :%s vs metered (cost 1) :%s vs priced (price_by model, POST) :%s; upstream bin/demo-upstream\n' "$PLAIN_PORT" "$METERED_PORT" "$PRICED_PORT"
	printf '%s rounds x %s per run (order alternating), warm-up %s; wrk, gateway, upstream and Redis share this machine\n\n' \
		"$BENCH_ROUNDS" "$BENCH_DURATION" "$BENCH_WARMUP"
	awk -v conns="$BENCH_CONNECTIONS" '
		/^BENCH_RESULT / {
			delete f
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			if (f["label"] ~ /^warmup/) next
			# label: rN-TARGET-cCONNS
			n = split(f["label"], parts, "-")
			key = parts[2] "-" parts[3]
			runs[key]++
			rps[key] += f["rps"]; p50[key] += f["p50_us"]; p99[key] += f["p99_us"]
			err[key] += f["errors"] + f["non2xx"]
		}
		function row(mode, target, k) {
			k = target "-" mode
			if (!runs[k]) { printf "%-10s %-8s %12s\n", mode, target, "no data"; return }
			printf "%-10s %-8s %12.1f %10.3f %10.3f %8d\n", (mode == "c1" ? "1 conn" : conns " conns"), target,
				rps[k] / runs[k], p50[k] / runs[k] / 1000, p99[k] / runs[k] / 1000, err[k]
		}
		function avg(a, k) { return runs[k] ? a[k] / runs[k] : 0 }
		END {
			printf "%-10s %-8s %12s %10s %10s %8s\n", "load", "route", "req/s", "p50 ms", "p99 ms", "errors"
			hi = "c" conns
			row(hi, "plain"); row(hi, "metered"); row(hi, "priced"); row("c1", "plain"); row("c1", "metered"); row("c1", "priced")
			printf "\n"
			if (avg(rps, "plain-" hi) > 0)
				printf "throughput ratio metered/plain at %d conns: %.3f\n", conns, avg(rps, "metered-" hi) / avg(rps, "plain-" hi)
			if (avg(rps, "plain-c1") > 0)
				printf "throughput ratio metered/plain at 1 conn:   %.3f\n", avg(rps, "metered-c1") / avg(rps, "plain-c1")
			if (avg(rps, "metered-" hi) > 0)
				printf "throughput ratio priced/metered at %d conns: %.3f\n", conns, avg(rps, "priced-" hi) / avg(rps, "metered-" hi)
			if (avg(rps, "metered-c1") > 0)
				printf "throughput ratio priced/metered at 1 conn:   %.3f\n", avg(rps, "priced-c1") / avg(rps, "metered-c1")
			printf "added p50 latency at 1 conn: %.3f ms\n", (avg(p50, "metered-c1") - avg(p50, "plain-c1")) / 1000
			printf "added p99 latency at 1 conn: %.3f ms\n", (avg(p99, "metered-c1") - avg(p99, "plain-c1")) / 1000
			total = 0
			for (k in err) total += err[k]
			if (total > 0) printf "ERRORS: %d failed or non-2xx responses; these numbers are not valid\n", total
		}' "$RAW/results.txt"
	for w in "${WARNINGS[@]}"; do printf 'WARNING: %s\n' "$w"; done
	printf '\nper run (BENCH_RESULT lines; wrk output in bench/results/raw/):\n'
	sed 's/^BENCH_RESULT /  /' "$RAW/results.txt"
	printf '\nbench-user after the run (GET /admin/v1/users/bench-user): %s\n' "$AFTER"
} >"$REPORT"

cp "$REPORT" "$RESULTS/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo
cat "$REPORT"
echo
log "bench: results written to ${REPORT#"$ROOT"/}"
if grep -q '^ERRORS: ' "$REPORT"; then
	die "some requests failed during the benchmark (see above and bench/results/raw/)"
fi
