#!/usr/bin/env bash
# Make sure Redis and PostgreSQL answer at the configured URLs.
#
#   scripts/services.sh ensure   use the servers at the URLs when they answer;
#                                otherwise install the Debian packages if needed
#                                and start private instances under .data/
#   scripts/services.sh stop     stop the private instances started by "ensure"
#   scripts/services.sh status   say what answers at the URLs
#   scripts/services.sh install  install redis-server and PostgreSQL's server
#                                programs if missing, start nothing (for suites
#                                that run private servers of their own, such as
#                                scripts/test-faults.sh)
#
# Environment:
#   TOLLGATE_REDIS_URL     default redis://127.0.0.1:6379/0
#   TOLLGATE_DATABASE_URL  default postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable
#                          (the database in the URL is created when missing)
#   TOLLGATE_DATA_DIR      where private instances live, default <repo>/.data
#
# URLs are read, servers pinged and databases created by internal/cmd/devenv
# (the gateway's own URL parsers); this script installs, starts and stops.
#
# Private instances: Redis in .data/redis/<port>/ (AOF, noeviction), PostgreSQL
# in .data/postgres/<port>/ (trust auth, owned by the postgres system user when
# run as root, since initdb refuses to run as root). They only ever listen on
# loopback, and only URLs that point at this machine get one.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_URL="${TOLLGATE_REDIS_URL:-redis://127.0.0.1:6379/0}"
DATABASE_URL="${TOLLGATE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable}"

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# lock_data_dir serialises the slow path (installing, starting) between
# concurrent runs, e.g. "make test" and "make run" started together.
LOCKED=0
lock_data_dir() {
	[[ "$LOCKED" -eq 1 ]] && return 0
	mkdir -p "$DATA_DIR"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$DATA_DIR/.services.lock"
		flock -w 300 9 || die "another scripts/services.sh has held $DATA_DIR/.services.lock for 5 minutes"
	fi
	LOCKED=1
}

# ---------------------------------------------------------------------------
# Redis

redis_private_dir() { printf '%s/redis/%s\n' "$DATA_DIR" "$1"; }

# redis_private_pid PORT prints the pid of our private Redis on PORT if it runs.
redis_private_pid() {
	local pidfile pid
	pidfile="$(redis_private_dir "$1")/redis.pid"
	[[ -s "$pidfile" ]] || return 1
	pid="$(cat "$pidfile")"
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid.
	grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null || [[ ! -d /proc ]] || return 1
	printf '%s\n' "$pid"
}

# server_ping KIND URL [-wait D]: does the redis or postgres server at URL
# answer? Sets PING_RC (0 yes, 3 nothing listens there, else another
# failure) and PING_MSG (devenv's sentence saying so). A PostgreSQL server
# that is starting up is waited for; -wait waits for one that does not
# listen yet.
server_ping() {
	local kind="$1" url="$2"
	shift 2
	PING_RC=0
	PING_MSG="$(devenv ping "$@" "$kind" "$url" 2>&1)" || PING_RC=$?
	PING_MSG="${PING_MSG#devenv: }"
}
redis_ping() { server_ping redis "$REDIS_URL" "$@"; }
pg_ping() { server_ping postgres "$DATABASE_URL" "$@"; }

ensure_redis() {
	local dir bind
	redis_endpoint "$REDIS_URL"
	redis_ping
	if [[ "$PING_RC" -eq 0 ]]; then
		if redis_private_pid "$R_PORT" >/dev/null; then
			log "redis: using private instance at $R_SHOWN (already running, $(redis_private_dir "$R_PORT"))"
		else
			log "redis: using existing server at $R_SHOWN"
		fi
		return 0
	fi

	lock_data_dir
	redis_ping
	[[ "$PING_RC" -eq 0 ]] && {
		log "redis: using server at $R_SHOWN (started meanwhile)"
		return 0
	}
	[[ "$PING_RC" -eq 3 ]] ||
		die "$PING_MSG
Fix TOLLGATE_REDIS_URL (password? database number?), or free $R_HOST:$R_PORT if something else listens there."
	[[ "$R_LOCAL" == 1 ]] ||
		die "$PING_MSG; it is not a TCP address on this machine, so no private instance can be started for it"
	[[ "$R_TLS" == 0 ]] ||
		die "$PING_MSG; private instances speak no TLS: use redis:// for one, or start your own TLS server"

	if ! command -v redis-server >/dev/null 2>&1; then
		apt_install redis-server
		# The package may have started its own service on the default port.
		redis_ping
		if [[ "$PING_RC" -eq 0 ]]; then
			log "redis: installed redis-server; using the server its package started at $R_SHOWN"
			return 0
		fi
		command -v redis-server >/dev/null 2>&1 || die "redis-server is still not on PATH after installing it"
	fi

	dir="$(redis_private_dir "$R_PORT")"
	mkdir -p "$dir"
	case "$R_HOST" in
	localhost) bind=127.0.0.1 ;;
	*) bind="$R_HOST" ;;
	esac
	local args=(
		--port "$R_PORT" --bind "$bind" --daemonize yes
		--dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
		--appendonly yes --appendfsync everysec --maxmemory-policy noeviction
	)
	if [[ -n "$R_PASS" ]]; then
		if [[ -n "$R_USER" && "$R_USER" != default ]]; then
			args+=(--user "$R_USER" on ">$R_PASS" '~*' '&*' '+@all')
		else
			args+=(--requirepass "$R_PASS")
		fi
	fi
	# 9>&-: the daemon must not inherit (and so hold forever) the lock.
	redis-server "${args[@]}" >"$dir/start.out" 2>&1 9>&- || {
		cat "$dir/start.out" >&2
		tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
		die "redis-server failed to start on $bind:$R_PORT"
	}
	redis_ping -wait 10s
	if [[ "$PING_RC" -ne 0 ]]; then
		tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
		die "the private redis-server started on $bind:$R_PORT: $PING_MSG"
	fi
	log "redis: started private instance at $R_SHOWN (dir ${dir#"$ROOT"/}, log ${dir#"$ROOT"/}/redis.log)"
}

stop_redis() {
	local pidfile port pid i stopped=0
	for pidfile in "$DATA_DIR"/redis/*/redis.pid; do
		[[ -e "$pidfile" ]] || continue
		port="$(basename "$(dirname "$pidfile")")"
		if ! pid="$(redis_private_pid "$port")"; then
			rm -f "$pidfile"
			continue
		fi
		kill -TERM "$pid"
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && die "private redis-server ($pid, port $port) did not stop within 10s"
		rm -f "$pidfile"
		log "redis: stopped private instance on port $port"
		stopped=1
	done
	[[ "$stopped" -eq 1 ]] || log "redis: no private instance running"
}

# ---------------------------------------------------------------------------
# PostgreSQL

pg_private_dir() { printf '%s/postgres/%s\n' "$DATA_DIR" "$1"; }

# find_pg_bindir sets PG_BINDIR to the newest directory holding initdb and pg_ctl.
find_pg_bindir() {
	local d found=()
	PG_BINDIR=""
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && found+=("$d")
	done
	if [[ ${#found[@]} -gt 0 ]]; then
		PG_BINDIR="$(printf '%s\n' "${found[@]}" | sort -V | tail -n 1)"
		return 0
	fi
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		PG_BINDIR="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
		return 0
	fi
	return 1
}

# install_postgresql installs the server without Debian's default "main"
# cluster: that one would take port 5432 with password authentication.
install_postgresql() {
	local dropin=/etc/postgresql-common/createcluster.d/zz-tollgate-no-main-cluster.conf rc=0
	[[ -e /etc/postgresql-common/createcluster.conf ]] || apt_install postgresql-common
	as_root mkdir -p /etc/postgresql-common/createcluster.d
	printf 'create_main_cluster = false\n' | as_root tee "$dropin" >/dev/null
	(apt_install postgresql) || rc=$?
	as_root rm -f "$dropin"
	[[ "$rc" -eq 0 ]] || exit "$rc"
}

# ensure_postgres_user creates the postgres system user when it is missing:
# as root, private clusters run as that user.
ensure_postgres_user() {
	id postgres >/dev/null 2>&1 && return 0
	log "postgres: creating system user 'postgres' to own private clusters"
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres ||
		die "could not create the postgres system user"
}

# Commands for the cluster owner: root may not run initdb/pg_ctl itself.
PG_RUNAS=()
pg_setup_owner() {
	local base="$1"
	PG_RUNAS=()
	[[ "$(id -u)" -eq 0 ]] || return 0
	ensure_postgres_user
	chown -R postgres: "$base"
	if command -v runuser >/dev/null 2>&1; then
		PG_RUNAS=(runuser -u postgres --)
	else
		# shellcheck disable=SC2016 # expanded by the postgres user's shell
		PG_RUNAS=(su -s /bin/sh postgres -c '"$0" "$@"')
	fi
	"${PG_RUNAS[@]}" test -w "$base" ||
		die "the postgres system user cannot write $base (probably a parent directory is closed to other users, like /root).
Set TOLLGATE_DATA_DIR to a directory it can reach, e.g. TOLLGATE_DATA_DIR=/var/tmp/tollgate-data"
}

start_private_pg() {
	local base data sock logf addr
	base="$(pg_private_dir "$P_PORT")"
	data="$base/data"
	sock="$base/run"
	logf="$base/postgres.log"
	mkdir -p "$base" "$sock"
	chmod 755 "$DATA_DIR" "$DATA_DIR/postgres" 2>/dev/null || true
	pg_setup_owner "$base"

	if [[ ! -s "$data/PG_VERSION" ]]; then
		(cd "$base" && "${PG_RUNAS[@]}" "$PG_BINDIR/initdb" -D "$data" -U "$P_USER" --auth=trust -E UTF8 --locale=C) \
			>"$base/initdb.log" 2>&1 || {
			tail -n 20 "$base/initdb.log" >&2
			die "initdb failed (full output in $base/initdb.log)"
		}
		log "postgres: initialised private cluster in ${data#"$ROOT"/} (superuser $P_USER, trust auth)"
	fi
	# Unix socket paths are limited to ~107 bytes.
	[[ ${#sock} -le 80 ]] || sock=/tmp
	case "$P_HOST" in
	localhost) addr=localhost ;;
	*) addr="$P_HOST" ;;
	esac
	(cd "$base" && "${PG_RUNAS[@]}" "$PG_BINDIR/pg_ctl" -D "$data" -l "$logf" -w -t 60 \
		-o "-p $P_PORT -c listen_addresses='$addr' -k '$sock'" start) >"$base/pg_ctl.out" 2>&1 9>&- || {
		cat "$base/pg_ctl.out" >&2
		tail -n 20 "$logf" >&2 2>/dev/null || true
		die "could not start the private PostgreSQL on $addr:$P_PORT (log: $logf)"
	}
	pg_ping -wait 30s
	[[ "$PING_RC" -eq 0 ]] || die "the private PostgreSQL started on $P_HOST:$P_PORT: $PING_MSG (log: $logf)"
	log "postgres: started private instance on $P_HOST:$P_PORT (data ${data#"$ROOT"/}, log ${logf#"$ROOT"/})"
}

# pg_private_running PORT: true when our private cluster for PORT runs.
pg_private_running() {
	local data
	data="$(pg_private_dir "$1")/data"
	[[ -s "$data/postmaster.pid" ]] || return 1
	kill -0 "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null
}

ensure_postgres() {
	local how out
	pg_endpoint "$DATABASE_URL"
	pg_ping
	if [[ "$PING_RC" -eq 0 ]]; then
		if pg_private_running "$P_PORT"; then
			how="using private instance on $P_HOST:$P_PORT (already running, $(pg_private_dir "$P_PORT"))"
		else
			how="using existing server at $P_SHOWN"
		fi
	else
		lock_data_dir
		pg_ping
		if [[ "$PING_RC" -eq 0 ]]; then
			how="using server at $P_SHOWN (started meanwhile)"
		else
			[[ "$PING_RC" -eq 3 ]] ||
				die "$PING_MSG
Fix TOLLGATE_DATABASE_URL (user? password?), or free $P_HOST:$P_PORT if something else listens there."
			[[ "$P_LOCAL" == 1 ]] ||
				die "$PING_MSG; it is not a TCP address on this machine, so no private instance can be started for it"
			if ! find_pg_bindir; then
				install_postgresql
				find_pg_bindir || die "initdb/pg_ctl not found under /usr/lib/postgresql/*/bin after installing postgresql"
			fi
			start_private_pg
			how="using the private instance on $P_HOST:$P_PORT"
		fi
	fi
	out="$(devenv ensure-db "$DATABASE_URL")" || die "PostgreSQL at $P_SHOWN answers, but its database is not usable (see above)"
	log "postgres: $how; $out"
}

stop_postgres() {
	local data base port stopped=0
	for data in "$DATA_DIR"/postgres/*/data; do
		[[ -s "$data/postmaster.pid" ]] || continue
		base="$(dirname "$data")"
		port="$(basename "$base")"
		if ! pg_private_running "$port"; then
			continue
		fi
		find_pg_bindir || die "pg_ctl not found; cannot stop the private PostgreSQL in $data"
		pg_setup_owner "$base"
		(cd "$base" && "${PG_RUNAS[@]}" "$PG_BINDIR/pg_ctl" -D "$data" -m fast -w -t 60 stop) >/dev/null ||
			die "pg_ctl stop failed for $data"
		log "postgres: stopped private instance on port $port"
		stopped=1
	done
	[[ "$stopped" -eq 1 ]] || log "postgres: no private instance running"
}

# install_programs installs what private servers need, starting nothing.
install_programs() {
	if ! command -v redis-server >/dev/null 2>&1; then
		apt_install redis-server
		command -v redis-server >/dev/null 2>&1 || die "redis-server is still not on PATH after installing it"
	fi
	if ! find_pg_bindir; then
		install_postgresql
		find_pg_bindir || die "initdb/pg_ctl not found under /usr/lib/postgresql/*/bin after installing postgresql"
	fi
	[[ "$(id -u)" -ne 0 ]] || ensure_postgres_user
	log "services: redis-server $(command -v redis-server), PostgreSQL programs in $PG_BINDIR"
}

status() {
	redis_endpoint "$REDIS_URL"
	redis_ping
	if [[ "$PING_RC" -eq 0 ]]; then
		log "redis: $R_SHOWN answers$(redis_private_pid "$R_PORT" >/dev/null && echo ' (private instance)')"
	else
		log "redis: $PING_MSG"
	fi
	pg_endpoint "$DATABASE_URL"
	pg_ping
	if [[ "$PING_RC" -eq 0 ]]; then
		log "postgres: $P_SHOWN answers$(pg_private_running "$P_PORT" && echo ' (private instance)')"
	else
		log "postgres: $PING_MSG"
	fi
}

case "${1:-}" in
ensure)
	build_devenv
	ensure_redis
	ensure_postgres
	;;
stop)
	stop_redis
	stop_postgres
	;;
status)
	build_devenv
	status
	;;
install) install_programs ;;
*) usage ;;
esac
