#!/usr/bin/env bash
# Tollgate's fault-injection suite (faults/, build tag "faults"; see
# docs/faults.md): private Redis, PostgreSQL, fake upstream and three gateways
# on free loopback ports, a load of concurrent clients, randomized faults,
# and the invariants checked after each.
#
# Environment:
#   FAULTS_CYCLES  randomized fault cycles, default 22 (each of the 11 faults twice)
#   FAULTS_REDIS_SHARDS  redis_shards of the gateways, default 4 (1: the
#                  unsharded layout)
#   FAULTS_SEED    seed of the run, default from the clock (printed; the same
#                  seed draws the same cycles)
#   FAULTS_ARGS    more flags for the suite, e.g.
#                  "-faults.cycle=redis-crash:123456" (rerun one cycle as printed),
#                  "-faults.only=redis-kill,postgres-stop", "-faults.skip=...",
#                  "-faults.keep" (keep logs and data of a passing run)
#   FAULTS_FLAGS   go test flags, default "-count=1 -timeout 45m"
#
# Installs redis-server and PostgreSQL's programs when missing (Debian
# packages); never touches the shared servers `make test` uses. Exits non-zero
# when any invariant is broken.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
find_go
cd "$ROOT"
start=$SECONDS

"$ROOT/scripts/services.sh" install
build_binaries

read -r -a flags <<<"${FAULTS_FLAGS:--count=1 -timeout 45m}"
read -r -a extra <<<"${FAULTS_ARGS:-}"
args=(-faults.cycles="${FAULTS_CYCLES:-22}" -faults.bin="$ROOT/bin/tollgate")
[[ -n "${FAULTS_SEED:-}" ]] && args+=(-faults.seed="$FAULTS_SEED")
args+=(-faults.redis-shards="${FAULTS_REDIS_SHARDS:-4}")

log "+ go vet -tags faults ./faults"
"$GO" vet -tags faults ./faults
log "+ go test -tags faults -v ${flags[*]} ./faults -args ${args[*]} ${extra[*]}"
"$GO" test -tags faults -v "${flags[@]}" ./faults -args "${args[@]}" "${extra[@]}"

log "test-faults.sh: the fault suite passed in $((SECONDS - start))s"
