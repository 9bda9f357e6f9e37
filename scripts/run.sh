#!/usr/bin/env bash
# `make run`: the quick start. Starts Redis/PostgreSQL when needed, builds,
# migrates, starts the demo upstream and the gateway with ./Caddyfile, creates
# the demo project and user, prints an API key and curl lines to try, then
# stays in the foreground until Ctrl-C (which stops gateway and upstream).
#
# Every TOLLGATE_* variable the Caddyfile reads gets a default here. The admin
# token, key pepper and key-encryption key are generated on the first run and
# kept in .data/secrets.env (a value set in the environment wins).
#
# The gateway listens on 127.0.0.1 only unless told otherwise:
# TOLLGATE_BIND=0.0.0.0 (every interface), or an address in TOLLGATE_LISTEN
# (TOLLGATE_LISTEN=0.0.0.0:8080).
#
# Also: TOLLGATE_BIN (default bin/tollgate), TOLLGATE_CONFIG (default
# Caddyfile), TOLLGATE_SKIP_BUILD=1 to use the binaries as they are.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

BIN="${TOLLGATE_BIN:-$ROOT/bin/tollgate}"
CONFIG="${TOLLGATE_CONFIG:-$ROOT/Caddyfile}"
GW_LOG="$DATA_DIR/gateway.log"
UP_LOG="$DATA_DIR/demo-upstream.log"
SECRETS="$DATA_DIR/secrets.env"

# ---------------------------------------------------------------------------
# Configuration

export TOLLGATE_REDIS_URL="${TOLLGATE_REDIS_URL:-redis://127.0.0.1:6379/0}"
export TOLLGATE_DATABASE_URL="${TOLLGATE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable}"
export TOLLGATE_LISTEN="${TOLLGATE_LISTEN:-:8080}"
export TOLLGATE_UPSTREAM="${TOLLGATE_UPSTREAM:-127.0.0.1:9090}"

# The Caddyfile's TOLLGATE_LISTEN is a site address: a host before the port
# is a name to answer for, not where to listen. An IP address there
# ("0.0.0.0:8080", "127.0.0.1:8081") is taken as where to listen instead.
split_hostport "$TOLLGATE_LISTEN" 8080
if [[ "$TOLLGATE_LISTEN" != :* && "$HP_HOST" =~ ^[0-9.]+$|:.*: ]]; then
	[[ "$HP_HOST" == *:* ]] && HP_HOST="[$HP_HOST]"
	export TOLLGATE_BIND="${TOLLGATE_BIND:-$HP_HOST}"
	TOLLGATE_LISTEN=":$HP_PORT"
fi
export TOLLGATE_BIND="${TOLLGATE_BIND:-127.0.0.1}"

mkdir -p "$DATA_DIR"
# secret NAME GENERATOR...: env value, else the one in secrets.env, else a new one.
secret() {
	local name="$1" value
	shift
	if [[ -n "${!name:-}" ]]; then
		export "${name?}"
		return 0
	fi
	value=""
	if [[ -f "$SECRETS" ]]; then
		value="$(sed -n "s/^$name=//p" "$SECRETS" | tail -n 1)"
	fi
	if [[ -z "$value" ]]; then
		value="$("$@")"
		(umask 077 && printf '%s=%s\n' "$name" "$value" >>"$SECRETS")
		log "run: generated $name (kept in ${SECRETS#"$ROOT"/})"
	fi
	printf -v "$name" '%s' "$value"
	export "${name?}"
}
secret TOLLGATE_ADMIN_TOKEN random_hex 24
secret TOLLGATE_KEY_PEPPER random_hex 32
secret TOLLGATE_KEY_ENCRYPTION_KEY random_b64 32
# TOLLGATE_VIEWER_TOKEN stays unset unless given: no read-only admin by default.

# Where the gateway answers: the site's host name if TOLLGATE_LISTEN names
# one, else the first address it listens on (loopback for every interface).
split_hostport "$TOLLGATE_LISTEN" 8080
GW_PORT="$HP_PORT"
GW_HOST="${TOLLGATE_BIND%% *}"
case "$TOLLGATE_LISTEN" in
:*) [[ "$GW_HOST" == 0.0.0.0 || "$GW_HOST" == "[::]" || "$GW_HOST" == "::" ]] && GW_HOST=127.0.0.1 ;;
*) GW_HOST="$HP_HOST" ;;
esac
[[ "$GW_HOST" == *:* && "$GW_HOST" != \[* ]] && GW_HOST="[$GW_HOST]"
BASE_URL="http://$GW_HOST:$GW_PORT"
ADMIN_URL="$BASE_URL/admin/v1"

split_hostport "$TOLLGATE_UPSTREAM" 9090
UP_HOST="$HP_HOST" UP_PORT="$HP_PORT"
[[ "$TOLLGATE_UPSTREAM" == :* ]] && UP_HOST=127.0.0.1

# ---------------------------------------------------------------------------
# Processes, stopped on exit

GW_PID="" UP_PID="" TAIL_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n "$TAIL_PID" ]] && kill "$TAIL_PID" 2>/dev/null
	if [[ -n "$GW_PID" ]] && kill -0 "$GW_PID" 2>/dev/null; then
		log "run: stopping the gateway ($GW_PID)"
		stop_pid "$GW_PID" gateway
	fi
	if [[ -n "$UP_PID" ]] && kill -0 "$UP_PID" 2>/dev/null; then
		log "run: stopping the demo upstream ($UP_PID)"
		stop_pid "$UP_PID" demo-upstream
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Services, build, migrations

# build_progress shows `go build -v`'s package names as a running count,
# so that the first build, which compiles Caddy and all its dependencies
# for several minutes, visibly works; other lines (downloads, errors) pass.
build_progress() {
	local n=0 line tty=0
	[[ -t 2 ]] && tty=1
	while IFS= read -r line; do
		if [[ "$line" =~ ^[A-Za-z0-9._~/-]+$ ]]; then
			n=$((n + 1))
			if ((tty)); then
				printf '\r\033[K  compiling: %d packages so far (%s)' "$n" "$line" >&2
			elif ((n % 50 == 0)); then
				printf '  compiling: %d packages so far\n' "$n" >&2
			fi
		else
			((tty && n)) && printf '\r\033[K' >&2
			printf '%s\n' "$line" >&2
		fi
	done
	((tty && n)) && printf '\r\033[K' >&2
	((n == 1)) && printf '  compiled 1 package\n' >&2
	((n > 1)) && printf '  compiled %d packages\n' "$n" >&2
	return 0
}

[[ -f "$CONFIG" ]] || die "no Caddyfile at $CONFIG"
build_devenv
"$ROOT/scripts/services.sh" ensure
if [[ "${TOLLGATE_SKIP_BUILD:-0}" != 1 ]]; then
	log "run: building bin/tollgate and bin/demo-upstream. The first build downloads and compiles Caddy and its"
	log "     dependencies: several minutes (progress below); later builds take seconds."
	build_start=$SECONDS
	if ! GOFLAGS="${GOFLAGS:+$GOFLAGS }-v" build_binaries 2>&1 | build_progress; then
		exit 1
	fi
	log "run: built in $((SECONDS - build_start))s"
fi
[[ -x "$BIN" ]] || die "$BIN is missing: run make build"
[[ -x "$ROOT/bin/demo-upstream" ]] || die "bin/demo-upstream is missing: run make build"

log "run: applying migrations ($BIN migrate)"
pg_endpoint "$TOLLGATE_DATABASE_URL"
"$BIN" migrate || die "migrations failed on $P_SHOWN"

if tcp_open "$GW_HOST" "$GW_PORT"; then
	die "something already listens on $GW_HOST:$GW_PORT (another make run?). Stop it or set TOLLGATE_LISTEN, e.g. TOLLGATE_LISTEN=:8081"
fi

# ---------------------------------------------------------------------------
# Upstream and gateway

if tcp_open "$UP_HOST" "$UP_PORT"; then
	log "run: something already listens on $UP_HOST:$UP_PORT; using it as the upstream (not starting bin/demo-upstream)"
else
	"$ROOT/bin/demo-upstream" -listen "$TOLLGATE_UPSTREAM" >"$UP_LOG" 2>&1 &
	UP_PID=$!
	wait_http "http://$UP_HOST:$UP_PORT/v1/models" 10 "$UP_PID" "$UP_LOG"
	log "run: demo upstream listening on $UP_HOST:$UP_PORT (pid $UP_PID, log ${UP_LOG#"$ROOT"/})"
fi

log "run: starting the gateway: ${BIN#"$ROOT"/} run --config ${CONFIG#"$ROOT"/} --adapter caddyfile (log ${GW_LOG#"$ROOT"/})"
"$BIN" run --config "$CONFIG" --adapter caddyfile >"$GW_LOG" 2>&1 &
GW_PID=$!
wait_http "$ADMIN_URL/health" 60 "$GW_PID" "$GW_LOG"
health_code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ADMIN_URL/health" || true)"
if [[ "$health_code" != 200 ]]; then
	echo "--- last lines of $GW_LOG:" >&2
	tail -n 30 "$GW_LOG" >&2
	die "the gateway answers $ADMIN_URL/health with HTTP $health_code, not 200"
fi

# ---------------------------------------------------------------------------
# Demo project and user

# The demo project and user, and prices for the demo upstream's model, so
# the metered /v1 routes answer (internal/cmd/devenv/seed.go says what).
DEMO_KEY="$(TOLLGATE_ADMIN_URL="$ADMIN_URL" devenv seed-demo)" ||
	die "creating the demo project, user and price through $ADMIN_URL failed (see above)"

# One request of each kind through the gateway, to show at once whether it
# all works: the status of each.
smoke() { # NAME OUTPUT PATH CURL-ARGS...
	local name="$1" out="$2" path="$3" code
	shift 3
	code="$(curl -s -o "$out" -w '%{http_code}' --max-time 20 "$BASE_URL$path" -H "Authorization: Bearer $DEMO_KEY" "$@" || true)"
	smoke_line+="${smoke_line:+, }$name $code"
	[[ "$code" == 200 ]] || smoke_failed=1
}
smoke_line="" smoke_failed=0
SPEECH_FILE="$DATA_DIR/hello.wav"
smoke chat /dev/null /v1/chat/completions -H 'Content-Type: application/json' \
	-d '{"model":"demo","messages":[{"role":"user","content":"hello"}]}'
smoke embeddings /dev/null /v1/embeddings -H 'Content-Type: application/json' -d '{"model":"demo","input":"hello world"}'
smoke speech "$SPEECH_FILE" /v1/audio/speech -H 'Content-Type: application/json' \
	-d '{"model":"demo","voice":"alloy","input":"Hello from Tollgate","response_format":"wav"}'
smoke transcription /dev/null /v1/audio/transcriptions -F model=demo -F "file=@$SPEECH_FILE"
smoke image /dev/null /v1/images/generations -H 'Content-Type: application/json' -d '{"model":"demo","prompt":"a lighthouse"}'
rm -f "$SPEECH_FILE"
if ((smoke_failed)); then
	smoke_line="WARNING: not every request through the gateway answered 200: $smoke_line (see ${GW_LOG#"$ROOT"/})"
else
	smoke_line="answered 200: $smoke_line"
fi

AUTH="-H \"Authorization: Bearer $DEMO_KEY\""
JSON="-H 'Content-Type: application/json'"
cat <<EOF

Tollgate is running.
  console      $BASE_URL/admin/   (sign in with the admin token below)
  gateway      $BASE_URL   (listening on $TOLLGATE_BIND; log: ${GW_LOG#"$ROOT"/})
  upstream     http://$UP_HOST:$UP_PORT
  admin token  $TOLLGATE_ADMIN_TOKEN   (kept in ${SECRETS#"$ROOT"/})
  demo key     $DEMO_KEY   (user demo-user, project demo)
  check        $smoke_line

Requests through the gateway, each charged at the demo model's price from the
usage the upstream reports (curl -i shows X-Credits-Remaining, the balance left):
  curl -s $BASE_URL/v1/chat/completions $AUTH $JSON -d '{"model":"demo","messages":[{"role":"user","content":"hello"}]}'
  curl -s $BASE_URL/v1/embeddings $AUTH $JSON -d '{"model":"demo","input":"hello world"}'
  curl -s $BASE_URL/v1/audio/speech $AUTH $JSON -d '{"model":"demo","voice":"alloy","input":"Hello from Tollgate","response_format":"wav"}' -o /tmp/hello.wav
  curl -s $BASE_URL/v1/audio/transcriptions $AUTH -F model=demo -F file=@/tmp/hello.wav
  curl -s $BASE_URL/v1/images/generations $AUTH $JSON -d '{"model":"demo","prompt":"a lighthouse"}'

The demo model costs 1 credit per million input tokens, 2 per million output
tokens, 0.00001 per character of speech, 0.0001 per second of audio and 0.02
per image; /v1/models and /v1/moderations cost 1 credit; every other endpoint
is refused (see Caddyfile). See the prices with
  curl -s $ADMIN_URL/prices -H "Authorization: Bearer $TOLLGATE_ADMIN_TOKEN"

The demo user's balances:
  curl -s $ADMIN_URL/users/demo-user -H "Authorization: Bearer $TOLLGATE_ADMIN_TOKEN"

Ctrl-C stops the gateway and the demo upstream. Gateway log follows.

EOF

tail -n 0 -f "$GW_LOG" &
TAIL_PID=$!

rc=0
wait "$GW_PID" || rc=$?
GW_PID=""
echo "--- last lines of $GW_LOG:" >&2
tail -n 20 "$GW_LOG" >&2
die "the gateway exited by itself (status $rc)"
