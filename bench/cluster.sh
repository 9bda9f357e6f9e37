#!/usr/bin/env bash
# `make bench-cluster`: fixed-cost charges/s with one Redis master and with
# a Redis Cluster of three, and the Redis CPU per charge on each master.
# For each topology it starts private redis-servers on free loopback ports
# (one standalone server; then three cluster-mode servers joined by
# redis-cli --cluster create, no replicas), re-creates its own PostgreSQL
# database, starts one gateway with bench/Caddyfile.cluster (redis_shards
# 12: fixed cost with credit leases off on :18092, on on :18095), creates
# 24 projects x 4 users, and loads each route with wrk rotating over the 96
# keys (bench/keys.lua), so every shard and every master gets traffic.
# Around each measured run bin/bench-cluster snapshots every master (INFO
# cpu; INFO commandstats after CONFIG RESETSTAT) and counts the charges
# the ledger recorded for the projects each master serves; its report is
# the table (bench/results/cluster-latest.txt).
#
# Environment (defaults):
#   BENCH_DURATION=15s   BENCH_WARMUP=5s   BENCH_ROUNDS=1 (per topology and route)
#   BENCH_CONNECTIONS=64 BENCH_THREADS=2
#   BENCH_CLUSTER_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench_cluster?sslmode=disable
#                        (dropped and re-created for each topology; its name must contain "bench")
#   BENCH_MAX_SECONDS=900  hard limit for the whole script, build included
# The shared Redis (6379) is not touched. Everything started here is
# stopped when the script exits, whatever the reason.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

BENCH_MAX_SECONDS="${BENCH_MAX_SECONDS:-900}"
# Bound the whole run: re-run this script under timeout(1) once.
run_bounded "$ROOT/bench/cluster.sh" "$BENCH_MAX_SECONDS" "$@"

BENCH_DURATION="${BENCH_DURATION:-15s}"
BENCH_WARMUP="${BENCH_WARMUP:-5s}"
BENCH_ROUNDS="${BENCH_ROUNDS:-1}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-64}"
BENCH_THREADS="${BENCH_THREADS:-2}"
DB_URL="${BENCH_CLUSTER_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tollgate_bench_cluster?sslmode=disable}"
CONFIG="$ROOT/bench/Caddyfile.cluster"
SHARDS=12 # as bench/Caddyfile.cluster's redis_shards
FIXED_PORT=18092
ADMIN_PORT=18093
LEASED_PORT=18095
UPSTREAM=127.0.0.1:19091

RESULTS="$ROOT/bench/results"
RAW="$RESULTS/cluster-raw"
for d in "$BENCH_DURATION" "$BENCH_WARMUP"; do
	[[ "$d" =~ ^[1-9][0-9]*[smh]?$ ]] || die "durations look like 15s, 2m or 30 (seconds); got '$d'"
done
[[ "$BENCH_ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, not '$BENCH_ROUNDS'"

GW_PID="" UP_PID="" WRK_PID="" REDIS_PIDS=() TMP=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	[[ -n "$WRK_PID" ]] && kill "$WRK_PID" 2>/dev/null
	[[ -n "$GW_PID" ]] && stop_pid "$GW_PID" gateway
	[[ -n "$UP_PID" ]] && stop_pid "$UP_PID" demo-upstream
	for pid in "${REDIS_PIDS[@]}"; do stop_pid "$pid" redis-server; done
	[[ -n "$TMP" ]] && rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
	build_binaries
fi
build_devenv
log "build: go build -o bin/bench-cluster ./bench/cmd/bench-cluster"
"$GO" build -o bin/bench-cluster ./bench/cmd/bench-cluster || die "building bin/bench-cluster failed"
BC="$ROOT/bin/bench-cluster"
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
for port in "$FIXED_PORT" "$ADMIN_PORT" "$LEASED_PORT" "${UPSTREAM##*:}"; do
	tcp_open 127.0.0.1 "$port" && die "port $port on 127.0.0.1 is in use (another bench-cluster still running?)"
done
pg_endpoint "$DB_URL"
[[ "$P_DB" == *bench* ]] || die "BENCH_CLUSTER_DATABASE_URL's database $P_DB is re-created for each topology: its name must contain \"bench\""

LOAD_BEFORE="$(cut -d" " -f1-3 /proc/loadavg)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench-cluster.XXXXXX")"
mkdir -p "$RESULTS"
rm -rf "$RAW"
mkdir -p "$RAW"
TOLLGATE_ADMIN_TOKEN="$(random_hex 24)"
TOLLGATE_KEY_PEPPER="$(random_hex 32)"
export TOLLGATE_ADMIN_TOKEN TOLLGATE_KEY_PEPPER TOLLGATE_DATABASE_URL="$DB_URL"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT/admin/v1"

"$ROOT/bin/demo-upstream" -listen "$UPSTREAM" >"$RAW/demo-upstream.log" 2>&1 &
UP_PID=$!
wait_http "http://$UPSTREAM/bench" 10 "$UP_PID" "$RAW/demo-upstream.log"

# start_redis NAME ARG...: a private redis-server on a free port, without
# persistence, its files under $TMP and its log in $RAW; appends
# 127.0.0.1:PORT to MASTERS.
start_redis() {
	local name="$1" port
	shift
	port="$("$BC" free-ports 1)"
	mkdir -p "$TMP/$name"
	redis-server --bind 127.0.0.1 --port "$port" --dir "$TMP/$name" --save '' --appendonly no \
		--protected-mode yes "$@" >"$RAW/redis-$name.log" 2>&1 &
	REDIS_PIDS+=($!)
	MASTERS+=("127.0.0.1:$port")
}

# measure TOPOLOGY ROUTE PORT: warm-up, then BENCH_ROUNDS measured wrk runs,
# each between two snapshots of every master.
measure() {
	local topo="$1" route="$2" port="$3" round label masters cluster_flag=()
	masters="$(IFS=,; echo "${MASTERS[*]}")"
	[[ "${CLUSTER:-0}" == 1 ]] && cluster_flag=(-cluster)
	for ((round = 0; round <= BENCH_ROUNDS; round++)); do
		label="$topo-$route-r$round"
		if ((round == 0)); then
			label="warmup-$topo-$route"
		else
			"$BC" snapshot -masters "$masters" -postgres "$DB_URL" -shards "$SHARDS" "${cluster_flag[@]}" -reset -out "$RAW/$label.before.json"
		fi
		log "bench-cluster: $label: wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS http://127.0.0.1:$port/bench"
		BENCH_DIR="$ROOT/bench" BENCH_KEYS_FILE="$TMP/keys.txt" BENCH_LABEL="$label" \
			wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" -d "$([[ $round == 0 ]] && echo "$BENCH_WARMUP" || echo "$BENCH_DURATION")" \
			--timeout 5s -s "$ROOT/bench/keys.lua" "http://127.0.0.1:$port/bench" >"$RAW/$label.wrk.txt" 2>&1 &
		WRK_PID=$!
		wait "$WRK_PID" || {
			cat "$RAW/$label.wrk.txt" >&2
			die "wrk failed ($label)"
		}
		WRK_PID=""
		if ((round == 0)); then
			mv "$RAW/$label.wrk.txt" "$RAW/$label.txt" # not a measured run
		else
			"$BC" snapshot -masters "$masters" -postgres "$DB_URL" -shards "$SHARDS" "${cluster_flag[@]}" -out "$RAW/$label.after.json"
		fi
	done
}

# topology NAME: the gateway on the servers in MASTERS (already started),
# a fresh database, the projects and users, and the two routes measured.
topology() {
	local topo="$1" url
	if [[ "${CLUSTER:-0}" != 1 ]]; then
		url="redis://${MASTERS[0]}/0"
	else
		url="redis+cluster://${MASTERS[0]}"
		((${#MASTERS[@]} > 1)) && url="$url?$(printf 'addr=%s&' "${MASTERS[@]:1}")" && url="${url%&}"
	fi
	log "bench-cluster: $topo: re-creating database $P_DB"
	devenv recreate-db "$DB_URL" >/dev/null || die "could not re-create database $P_DB"
	"$ROOT/bin/tollgate" migrate >/dev/null || die "migrations failed on $P_SHOWN"
	log "bench-cluster: $topo: gateway on $url"
	TOLLGATE_REDIS_URL="$url" "$ROOT/bin/tollgate" run --config "$CONFIG" --adapter caddyfile >"$RAW/gateway-$topo.log" 2>&1 &
	GW_PID=$!
	wait_http "$ADMIN_URL/health" 60 "$GW_PID" "$RAW/gateway-$topo.log"
	"$BC" seed -admin "$ADMIN_URL" -projects 24 -users 4 -out "$TMP/keys.txt"
	measure "$topo" fixed "$FIXED_PORT"
	measure "$topo" leased "$LEASED_PORT"
	stop_pid "$GW_PID" gateway
	GW_PID=""
}

stop_redis() {
	local pid
	for pid in "${REDIS_PIDS[@]}"; do stop_pid "$pid" redis-server; done
	REDIS_PIDS=()
}

# (a) one standalone master.
MASTERS=()
start_redis single
"$BC" wait-redis "${MASTERS[@]}"
topology 1master
stop_redis

# (a') the same one master in cluster mode, serving all 16384 slots itself
# (redis-cli --cluster create wants three masters; CLUSTER ADDSLOTSRANGE
# does not): what cluster mode and a cluster client cost, apart from the
# split over masters.
MASTERS=()
# A node alone does not learn its own address from a peer: announce it, or
# CLUSTER SLOTS names it ":port".
start_redis cnode --cluster-enabled yes --cluster-config-file "$TMP/cnode/nodes.conf" \
	--cluster-node-timeout 2000 --cluster-port "$("$BC" free-ports 1)" --cluster-announce-ip 127.0.0.1
"$BC" wait-redis "${MASTERS[@]}"
redis-cli -h 127.0.0.1 -p "${MASTERS[0]##*:}" cluster addslotsrange 0 16383 >"$RAW/cluster-addslots.log" 2>&1 ||
	{ cat "$RAW/cluster-addslots.log" >&2; die "CLUSTER ADDSLOTSRANGE failed"; }
"$BC" wait-redis -cluster "${MASTERS[@]}"
CLUSTER=1 topology 1cluster
stop_redis

# (b) a Redis Cluster of three masters without replicas. The cluster bus
# port is set explicitly: its default, the client port + 10000, is past
# 65535 for a port from the ephemeral range.
MASTERS=()
for i in 1 2 3; do
	start_redis "node$i" --cluster-enabled yes --cluster-config-file "$TMP/node$i/nodes.conf" \
		--cluster-node-timeout 2000 --cluster-port "$("$BC" free-ports 1)"
done
"$BC" wait-redis "${MASTERS[@]}"
redis-cli --cluster create "${MASTERS[@]}" --cluster-replicas 0 --cluster-yes >"$RAW/cluster-create.log" 2>&1 ||
	{ cat "$RAW/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
"$BC" wait-redis -cluster "${MASTERS[@]}"
CLUSTER=1 topology 3masters
stop_redis

REPORT="$RESULTS/cluster-latest.txt"
{
	printf 'Tollgate bench-cluster, %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf 'commit %s, %s cores, load average before: %s, %s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo none)" "$(nproc)" \
		"$LOAD_BEFORE" "$(redis-server --version | awk '{print $1, $2, $3}')"
	printf 'redis_shards %s, 24 projects x 4 users, wrk -t%s -c%s, %s per run after a %s warm-up, %s round(s)\n\n' \
		"$SHARDS" "$BENCH_THREADS" "$BENCH_CONNECTIONS" "$BENCH_DURATION" "$BENCH_WARMUP" "$BENCH_ROUNDS"
	"$BC" report "$RAW"
	printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$REPORT" || { cat "$REPORT"; die "the report failed (see above)"; }
cp "$REPORT" "$RESULTS/cluster-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo
cat "$REPORT"
log "bench-cluster: results written to ${REPORT#"$ROOT"/}"
