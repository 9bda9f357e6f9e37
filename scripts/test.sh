#!/usr/bin/env bash
# Tollgate's checks: go vet and go test against a real Redis and PostgreSQL.
#
# Environment:
#   TOLLGATE_TEST_REDIS_URL     default redis://127.0.0.1:6379/0
#   TOLLGATE_TEST_DATABASE_URL  default postgres://postgres@127.0.0.1:5432/tollgate_test?sslmode=disable
#                               (the database is created when missing)
#   TEST_FLAGS                  go test flags, default "-race -count=1 -timeout 9m"
#   TEST_PACKAGES               default ./...
#   TOLLGATE_CHROMIUM           the browser tests' Chromium, default /usr/bin/chromium
#                               (Debian's chromium package is installed when missing)
#
# Both services are started privately under .data/ when they do not answer
# (see scripts/services.sh). Exits non-zero when anything fails.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
find_go
cd "$ROOT"
start=$SECONDS

export TOLLGATE_TEST_REDIS_URL="${TOLLGATE_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
export TOLLGATE_TEST_DATABASE_URL="${TOLLGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tollgate_test?sslmode=disable}"
TOLLGATE_REDIS_URL="$TOLLGATE_TEST_REDIS_URL" TOLLGATE_DATABASE_URL="$TOLLGATE_TEST_DATABASE_URL" \
	"$ROOT/scripts/services.sh" ensure
# The browser tests (e2e/browser) drive a real Chromium.
ensure_chromium

if [[ -z "${TEST_FLAGS+set}" ]]; then
	TEST_FLAGS="-race -count=1 -timeout 9m"
	# The race detector needs cgo and a C compiler.
	if [[ "$("$GO" env CGO_ENABLED)" != 1 ]] || ! command -v "$("$GO" env CC)" >/dev/null 2>&1; then
		warn "no C compiler for cgo ($("$GO" env CC)): running the tests WITHOUT -race (apt-get install gcc to get it back)"
		TEST_FLAGS="-count=1 -timeout 9m"
	fi
fi
read -r -a test_flags <<<"$TEST_FLAGS"
read -r -a packages <<<"${TEST_PACKAGES:-./...}"

log "+ bash -n scripts/*.sh bench/*.sh .ci/run"
for f in scripts/*.sh bench/*.sh .ci/run; do
	[[ -e "$f" ]] || continue
	bash -n "$f" || die "shell syntax error in $f"
done

log "+ go vet ${packages[*]}"
"$GO" vet "${packages[@]}"

# The metering and admin tests once more with the keys in four Redis shards (each
# under its own hash tag, as a Redis Cluster deployment has them), beside
# the main run: they mostly wait on Redis and Postgres, so the two share
# the machine well. Without -race: the main run has it.
sharded_log=""
if [[ -z "${TEST_PACKAGES:-}" ]]; then
	sharded_log=$(mktemp)
	log "+ TOLLGATE_TEST_REDIS_SHARDS=4 go test -count=1 -timeout 9m ./metering/ ./admin/ (in the background)"
	TOLLGATE_TEST_REDIS_SHARDS=4 "$GO" test -count=1 -timeout 9m ./metering/ ./admin/ >"$sharded_log" 2>&1 &
	sharded_pid=$!
fi

log "+ go test ${test_flags[*]} ${packages[*]}"
main_rc=0
"$GO" test "${test_flags[@]}" "${packages[@]}" || main_rc=$?

if [[ -n "$sharded_log" ]]; then
	sharded_rc=0
	wait "$sharded_pid" || sharded_rc=$?
	log "metering and admin tests with 4 Redis shards:"
	cat "$sharded_log"
	rm -f "$sharded_log"
	((sharded_rc == 0)) || die "the metering or admin tests failed with 4 Redis shards (TOLLGATE_TEST_REDIS_SHARDS=4)"
fi
((main_rc == 0)) || die "go test failed"

log "test.sh: all checks passed in $((SECONDS - start))s"
