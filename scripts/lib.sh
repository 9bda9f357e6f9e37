# shellcheck shell=bash
# Shared helpers for Tollgate's scripts. Source it; do not run it.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sets ROOT (the repository root) and DATA_DIR (private state, default
# $ROOT/.data, override with TOLLGATE_DATA_DIR).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
DATA_DIR="${TOLLGATE_DATA_DIR:-$ROOT/.data}"

# PROG names the running script in messages: scripts/run.sh, bench/run.sh.
PROG="$(basename "$(dirname "$0")")/$(basename "$0")"
log() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# find_go sets GO to a usable go binary, also when it is not on PATH.
find_go() {
	if [[ -n "${GO:-}" && -x "${GO}" ]]; then
		return 0
	fi
	if command -v go >/dev/null 2>&1; then
		GO="$(command -v go)"
	elif [[ -x /usr/local/go/bin/go ]]; then
		GO=/usr/local/go/bin/go
	elif [[ -x "$HOME/go/bin/go" ]]; then
		GO="$HOME/go/bin/go"
	else
		local series
		series="$(sed -n 's/^go \([0-9]*\.[0-9]*\).*/\1/p' "$ROOT/go.mod" 2>/dev/null)"
		die "Go is not installed (looked on PATH and in /usr/local/go/bin).
Install Go ${series:-1.26} or newer (https://go.dev/doc/install): download the newest
go${series:-1.26}.N.linux-amd64.tar.gz from https://go.dev/dl/ and unpack it into /usr/local:
  sudo rm -rf /usr/local/go && sudo tar -C /usr/local -xzf go${series:-1.26}.N.linux-amd64.tar.gz
or set GO=/path/to/go."
	fi
	# Child processes (go generate, tools) may look for go on PATH too.
	PATH="$(dirname "$GO"):$PATH"
	export GO PATH
}

# build_binaries builds bin/tollgate and bin/demo-upstream.
build_binaries() {
	find_go
	log "build: go build -o bin/tollgate ./cmd/tollgate"
	(cd "$ROOT" && "$GO" build -o bin/tollgate ./cmd/tollgate) || die "building bin/tollgate failed"
	log "build: go build -o bin/demo-upstream ./cmd/demo-upstream"
	(cd "$ROOT" && "$GO" build -o bin/demo-upstream ./cmd/demo-upstream) || die "building bin/demo-upstream failed"
}

# as_root runs a command as root: directly when we are root, else with sudo.
as_root() {
	if [[ "$(id -u)" -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run '$*' and sudo is not installed; run it as root or install the package yourself"
	fi
}

APT_UPDATED=0
# apt_install installs Debian packages non-interactively; apt's chatter goes
# to a log file that is shown when something fails.
apt_install() {
	local aptlog
	command -v apt-get >/dev/null 2>&1 ||
		die "apt-get not found: install these packages yourself: $*"
	aptlog="$(mktemp "${TMPDIR:-/tmp}/tollgate-apt.XXXXXX")"
	log "installing Debian packages: $* (apt-get, output in $aptlog)"
	if [[ "$APT_UPDATED" -eq 0 ]]; then
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$aptlog" 2>&1 || {
			tail -n 30 "$aptlog" >&2
			die "apt-get update failed (output above, full log in $aptlog)"
		}
		APT_UPDATED=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$aptlog" 2>&1 || {
		tail -n 30 "$aptlog" >&2
		die "apt-get install $* failed (output above, full log in $aptlog)"
	}
	rm -f "$aptlog"
}

# ensure_chromium makes sure the browser tests (e2e/browser) have a
# Chromium: $TOLLGATE_CHROMIUM when set, else /usr/bin/chromium, installing
# Debian's chromium package when that is missing. Exports TOLLGATE_CHROMIUM.
ensure_chromium() {
	local path="${TOLLGATE_CHROMIUM:-/usr/bin/chromium}"
	if [[ ! -x "$path" ]]; then
		[[ -n "${TOLLGATE_CHROMIUM:-}" ]] &&
			die "TOLLGATE_CHROMIUM=$TOLLGATE_CHROMIUM is not an executable file; unset it to have /usr/bin/chromium installed"
		apt_install chromium
		[[ -x "$path" ]] || die "$path is still missing after installing the chromium package"
	fi
	export TOLLGATE_CHROMIUM="$path"
}

# ---------------------------------------------------------------------------
# URL parsing. Results go into global variables (bash has no tuples).

# parse_redis_url URL sets R_HOST R_PORT R_DB R_USER R_PASS.
# Accepts redis://[user[:pass]@]host[:port][/db][?opts] and rediss://.
parse_redis_url() {
	local url="$1" rest auth hostport
	[[ "$url" =~ ^rediss?:// ]] || die "not a redis:// URL: $url"
	rest="${url#*://}"
	rest="${rest%%\?*}"
	R_USER="" R_PASS="" R_DB=0
	if [[ "$rest" == *@* ]]; then
		auth="${rest%@*}"
		rest="${rest##*@}"
		if [[ "$auth" == *:* ]]; then
			R_USER="${auth%%:*}"
			R_PASS="${auth#*:}"
		else
			R_USER="$auth"
		fi
	fi
	hostport="${rest%%/*}"
	if [[ "$rest" == */* ]]; then
		R_DB="${rest#*/}"
		R_DB="${R_DB:-0}"
	fi
	split_hostport "$hostport" 6379
	R_HOST="$HP_HOST" R_PORT="$HP_PORT"
	[[ "$R_DB" =~ ^[0-9]+$ ]] || die "bad database number '$R_DB' in redis URL $(mask_url "$url")"
}

# parse_pg_url URL sets P_USER P_PASS P_HOST P_PORT P_DB P_QUERY.
# Accepts postgres[ql]://[user[:pass]@]host[:port][/db][?params].
parse_pg_url() {
	local url="$1" rest auth hostport
	[[ "$url" =~ ^postgres(ql)?:// ]] || die "not a postgres:// URL: $(mask_url "$url")"
	rest="${url#*://}"
	P_QUERY=""
	if [[ "$rest" == *\?* ]]; then
		P_QUERY="${rest#*\?}"
		rest="${rest%%\?*}"
	fi
	P_USER="" P_PASS=""
	if [[ "$rest" == *@* ]]; then
		auth="${rest%@*}"
		rest="${rest##*@}"
		if [[ "$auth" == *:* ]]; then
			P_USER="${auth%%:*}"
			P_PASS="${auth#*:}"
		else
			P_USER="$auth"
		fi
	fi
	P_USER="${P_USER:-${PGUSER:-postgres}}"
	hostport="${rest%%/*}"
	P_DB=""
	[[ "$rest" == */* ]] && P_DB="${rest#*/}"
	P_DB="${P_DB:-$P_USER}"
	split_hostport "$hostport" 5432
	P_HOST="$HP_HOST" P_PORT="$HP_PORT"
	[[ "$P_DB" =~ ^[A-Za-z0-9_.-]+$ ]] ||
		die "database name '$P_DB' in $(mask_url "$url") has characters these scripts do not handle"
}

# pg_url_with_db URL DB prints URL with its database replaced by DB.
pg_url_with_db() {
	parse_pg_url "$1"
	local auth="$P_USER" host="$P_HOST"
	[[ -n "$P_PASS" ]] && auth="$P_USER:$P_PASS"
	[[ "$host" == *:* ]] && host="[$host]"
	printf 'postgres://%s@%s:%s/%s%s\n' "$auth" "$host" "$P_PORT" "$2" "${P_QUERY:+?$P_QUERY}"
}

# split_hostport HOSTPORT DEFAULT_PORT sets HP_HOST HP_PORT ("[::1]:6379" works).
split_hostport() {
	local hp="$1"
	HP_PORT="$2"
	if [[ "$hp" =~ ^\[([^]]*)\](:([0-9]+))?$ ]]; then
		HP_HOST="${BASH_REMATCH[1]}"
		HP_PORT="${BASH_REMATCH[3]:-$2}"
	elif [[ "$hp" == *:* ]]; then
		HP_HOST="${hp%:*}"
		HP_PORT="${hp##*:}"
	else
		HP_HOST="$hp"
	fi
	HP_HOST="${HP_HOST:-127.0.0.1}"
	[[ "$HP_PORT" =~ ^[0-9]+$ ]] || die "bad port in '$hp'"
}

# mask_url prints URL with any password replaced by ***.
mask_url() {
	# shellcheck disable=SC2001
	sed 's#\(://[^:/@]*:\)[^@/]*@#\1***@#' <<<"$1"
}

is_loopback() {
	case "$1" in
	localhost | ::1 | 127.*) return 0 ;;
	*) return 1 ;;
	esac
}

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
	local host="$1" port="$2"
	[[ "$host" == localhost ]] && host=127.0.0.1
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# ---------------------------------------------------------------------------
# Redis without redis-cli: RESP over bash's /dev/tcp.

# redis_cmd URL ARG... runs one command on the URL's database (AUTH and SELECT
# first when the URL says so) and prints the reply's first line in RESP style:
# "+PONG", "+OK", or "-what went wrong". Uses redis-cli when installed, else
# speaks RESP over bash's /dev/tcp.
redis_cmd() {
	local url="$1" out
	shift
	parse_redis_url "$url"
	if command -v redis-cli >/dev/null 2>&1; then
		# Explicit flags, not -u: redis-cli 7.0 mishandles "redis://:pass@host".
		local cli=(redis-cli -h "$R_HOST" -p "$R_PORT" -n "$R_DB")
		[[ -n "$R_USER" ]] && cli+=(--user "$R_USER")
		[[ -n "$R_PASS" ]] && cli+=(--no-auth-warning -a "$R_PASS")
		[[ "$url" == rediss://* ]] && cli+=(--tls)
		out="$(timeout 10 "${cli[@]}" "$@" 2>&1)" || true
		case "$out" in
		PONG | OK) printf '+%s\n' "$out" ;;
		*) printf -- '-%s\n' "$(tr '\n' ' ' <<<"${out:-no reply (redis-cli failed)}")" ;;
		esac
		return 0
	fi
	local host="$R_HOST"
	[[ "$host" == localhost ]] && host=127.0.0.1
	HOST="$host" PORT="$R_PORT" PASS="$R_PASS" RUSER="$R_USER" DB="$R_DB" \
		timeout 10 bash -c "$(declare -f _redis_resp_session); _redis_resp_session \"\$@\"" redis_cmd "$@" ||
		echo "-timed out talking to $host:$R_PORT"
}

# _redis_resp_session ARG... (env HOST PORT PASS RUSER DB): one RESP
# conversation. Runs in its own bash (see redis_cmd).
# shellcheck disable=SC2153 # HOST and PORT come from the environment
_redis_resp_session() {
	local r
	exec 2>/dev/null
	exec 3<>"/dev/tcp/$HOST/$PORT" || {
		echo "-cannot connect to $HOST:$PORT"
		return 0
	}
	_resp_send() {
		local a
		printf '*%d\r\n' "$#" >&3
		for a in "$@"; do printf '$%d\r\n%s\r\n' "${#a}" "$a" >&3; done
	}
	_resp_read() {
		local l
		IFS= read -r -t 5 l <&3 || l="-no reply from $HOST:$PORT"
		printf '%s\n' "${l%$'\r'}"
	}
	if [[ -n "$PASS" ]]; then
		if [[ -n "$RUSER" ]]; then _resp_send AUTH "$RUSER" "$PASS"; else _resp_send AUTH "$PASS"; fi
		r="$(_resp_read)"
		[[ "$r" == +* ]] || { echo "$r"; return 0; }
	fi
	if [[ "$DB" != 0 ]]; then
		_resp_send SELECT "$DB"
		r="$(_resp_read)"
		[[ "$r" == +* ]] || { echo "$r"; return 0; }
	fi
	_resp_send "$@"
	_resp_read
}

# ---------------------------------------------------------------------------
# Processes.

# wait_http URL SECONDS PID [LOGFILE]: wait until URL answers (any HTTP status
# below 500), fail early if PID died; on failure print LOGFILE's tail.
wait_http() {
	local url="$1" secs="$2" pid="$3" logfile="${4:-}" i code
	for ((i = 0; i < secs * 5; i++)); do
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			[[ -n "$logfile" && -f "$logfile" ]] && { echo "--- last lines of $logfile:" >&2; tail -n 40 "$logfile" >&2; echo "---" >&2; }
			die "process $pid${logfile:+ (log: $logfile)} exited before $url answered"
		fi
		code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)"
		if [[ "$code" =~ ^[1-4][0-9][0-9]$ ]]; then
			return 0
		fi
		sleep 0.2
	done
	[[ -n "$logfile" && -f "$logfile" ]] && { echo "--- last lines of $logfile:" >&2; tail -n 40 "$logfile" >&2; echo "---" >&2; }
	die "$url did not answer within ${secs}s${logfile:+ (log: $logfile)}"
}

# stop_pid PID [NAME]: TERM, wait up to 10 s, then KILL.
stop_pid() {
	local pid="$1" name="${2:-process}" i
	[[ -n "$pid" ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	warn "$name ($pid) did not stop after 10s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

# random_hex N prints N random bytes as hex.
random_hex() {
	od -An -v -tx1 -N "$1" /dev/urandom | tr -d ' \n'
}

# random_b64 N prints N random bytes as standard base64.
random_b64() {
	head -c "$1" /dev/urandom | base64 | tr -d '\n'
}

# json_field NAME prints the string value of "NAME" in the JSON on stdin
# (first occurrence). Uses jq when present.
json_field() {
	local input
	input="$(cat)"
	if command -v jq >/dev/null 2>&1; then
		jq -er --arg k "$1" '.. | objects | select(has($k)) | .[$k] | select(type == "string")' <<<"$input" 2>/dev/null | head -n 1
	else
		tr -d '\n' <<<"$input" | grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n 1 |
			sed 's/.*:[[:space:]]*"\([^"]*\)"$/\1/'
	fi
}

# admin_call METHOD PATH [JSON]: calls the admin API at $ADMIN_URL (e.g.
# http://127.0.0.1:8080/admin/v1) with $ADMIN_TOKEN; sets HTTP_CODE and
# HTTP_BODY. Dies only when no HTTP answer came at all.
admin_call() {
	local method="$1" path="$2" body="${3:-}" out
	local args=(-sS --max-time 20 -X "$method" -H "Authorization: Bearer $ADMIN_TOKEN" -w '\n%{http_code}')
	[[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data "$body")
	out="$(curl "${args[@]}" "$ADMIN_URL/$path")" || die "$method $ADMIN_URL/$path: no answer (curl failed)"
	HTTP_CODE="${out##*$'\n'}"
	HTTP_BODY="${out%$'\n'*}"
	[[ "$HTTP_BODY" == "$HTTP_CODE" ]] && HTTP_BODY=""
	return 0
}

# ensure_price MODEL PRICE_JSON: creates or replaces a model's price
# through the admin API (PUT is idempotent).
ensure_price() {
	local model="$1" price_json="$2"
	admin_call PUT "prices/$model" "$price_json"
	[[ "$HTTP_CODE" == 200 || "$HTTP_CODE" == 201 ]] ||
		die "setting the price of $model failed: PUT $ADMIN_URL/prices/$model -> HTTP $HTTP_CODE: $HTTP_BODY"
}

# ensure_admin_user PROJECT_JSON USERNAME USER_JSON: creates the project and
# the user through the admin API (409 "exists" is fine; an existing user gets
# a fresh key) and sets API_KEY.
ensure_admin_user() {
	local project_json="$1" username="$2" user_json="$3"
	admin_call POST projects "$project_json"
	case "$HTTP_CODE" in
	200 | 201 | 409) ;;
	*) die "creating the project failed: POST $ADMIN_URL/projects -> HTTP $HTTP_CODE: $HTTP_BODY" ;;
	esac
	admin_call POST users "$user_json"
	case "$HTTP_CODE" in
	200 | 201) ;;
	409)
		admin_call POST "users/$username/key/rotate"
		[[ "$HTTP_CODE" == 200 || "$HTTP_CODE" == 201 ]] ||
			die "user $username exists, and rotating its key failed: POST $ADMIN_URL/users/$username/key/rotate -> HTTP $HTTP_CODE: $HTTP_BODY"
		;;
	*) die "creating user $username failed: POST $ADMIN_URL/users -> HTTP $HTTP_CODE: $HTTP_BODY" ;;
	esac
	API_KEY="$(json_field api_key <<<"$HTTP_BODY")"
	[[ -n "$API_KEY" ]] || die "no api_key in the admin API's answer: $HTTP_BODY"
	[[ "$API_KEY" == tg_* ]] || warn "the API key does not start with tg_: $API_KEY"
}
