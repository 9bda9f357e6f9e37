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
# devenv (internal/cmd/devenv): what the scripts need from Go. It reads
# Redis and PostgreSQL URLs with the gateway's own parsers, pings servers,
# creates databases, runs Redis commands and seeds the demo through the
# admin API's client. Built once per run into bin/devenv (a `go run` per
# call would cost ~0.4 s each; the built binary ~5 ms).

# build_devenv builds bin/devenv and exports TOLLGATE_DEVENV_BIN, so that
# scripts this one starts use it without building again.
build_devenv() {
	local tmp
	find_go
	mkdir -p "$ROOT/bin"
	# Built aside and renamed into place: a concurrent run may be executing
	# the old binary, which must not be overwritten in place.
	tmp="$ROOT/bin/.devenv.$$"
	(cd "$ROOT" && "$GO" build -o "$tmp" ./internal/cmd/devenv) || {
		rm -f "$tmp"
		die "building bin/devenv (go build ./internal/cmd/devenv) failed"
	}
	mv -f "$tmp" "$ROOT/bin/devenv"
	export TOLLGATE_DEVENV_BIN="$ROOT/bin/devenv"
}

# devenv ARG... runs bin/devenv (see internal/cmd/devenv/main.go).
devenv() {
	[[ -n "${TOLLGATE_DEVENV_BIN:-}" ]] || build_devenv
	"$TOLLGATE_DEVENV_BIN" "$@"
}

# redis_endpoint URL sets R_HOST R_PORT R_DB R_USER R_PASS R_TLS R_LOCAL
# (1: a loopback TCP address) and R_SHOWN (the URL without its password).
redis_endpoint() {
	local vars
	vars="$(devenv env redis "$1")" || die "cannot use this Redis URL (see above)"
	eval "$vars"
}

# pg_endpoint URL sets P_HOST P_PORT P_DB P_USER P_PASS P_TLS P_LOCAL P_SHOWN
# (with several hosts, the first one's).
pg_endpoint() {
	local vars
	vars="$(devenv env postgres "$1")" || die "cannot use this PostgreSQL URL (see above)"
	eval "$vars"
}

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
	devenv listening "$1" "$2" 2>/dev/null
}

# split_hostport HOSTPORT DEFAULT_PORT sets HP_HOST HP_PORT ("[::1]:6379"
# works), for the listen and upstream addresses of scripts/run.sh.
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

# run_bounded SCRIPT MAX_SECONDS ARG...: bound a benchmark script's whole
# run. Called at the script's top: unless this is already the bounded run,
# re-run SCRIPT under timeout(1) once and exit with its status.
# --foreground sends TERM to the script only; its trap then stops what it
# started.
run_bounded() {
	local script="$1" max="$2" rc=0
	shift 2
	if [[ -n "${TOLLGATE_BENCH_TIMED:-}" ]] || ! command -v timeout >/dev/null 2>&1; then
		return 0
	fi
	export TOLLGATE_BENCH_TIMED=1
	timeout --foreground --kill-after=60 "$max" bash "$script" "$@" || rc=$?
	[[ "$rc" -eq 124 ]] && echo "${script#"$ROOT"/}: stopped after BENCH_MAX_SECONDS=${max}s" >&2
	exit "$rc"
}

# random_hex N prints N random bytes as hex.
random_hex() {
	od -An -v -tx1 -N "$1" /dev/urandom | tr -d ' \n'
}

# random_b64 N prints N random bytes as standard base64.
random_b64() {
	head -c "$1" /dev/urandom | base64 | tr -d '\n'
}
