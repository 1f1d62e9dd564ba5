#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the PgStore tests and prints its URL.
#
#   scripts/start-postgres.sh [PORT] [DIR]      (defaults: 55432, /tmp/fhirgate-pg)
#   scripts/start-postgres.sh stop [PORT] [DIR]
#
# Idempotent: a cluster already running on DIR is reused; an existing data directory is
# started again. Safe as root: initdb and the server run as the `postgres` user (initdb
# refuses root). Installs the Debian `postgresql` package when initdb is missing. Trust
# authentication on 127.0.0.1 only: for tests, never for data that matters.
#
# The last line of output is the URL, so a caller can do
#   export FHIRGATE_TEST_DATABASE_URL="$(scripts/start-postgres.sh | tail -n 1)"
set -euo pipefail

action=start
if [[ "${1:-}" == "stop" ]]; then
    action=stop
    shift
fi
PORT="${1:-55432}"
DIR="${2:-/tmp/fhirgate-pg}"
DATA="$DIR/data"
LOG="$DIR/log"

find_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$found" && -x "$found/initdb" ]]; then
        echo "$found"
    fi
}

BIN="$(find_bin)"
if [[ -z "$BIN" ]]; then
    if [[ "$action" == "stop" ]]; then
        echo "no PostgreSQL installed: nothing to stop" >&2
        exit 0
    fi
    echo "initdb not found: installing the postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN="$(find_bin)"
    if [[ -z "$BIN" ]]; then
        echo "initdb still missing after installing postgresql" >&2
        exit 1
    fi
fi

# Run a command as the postgres user when we are root, as ourselves otherwise.
as_pg() {
    if [[ "$(id -u)" == "0" ]]; then
        # su with a login-less shell; quote every argument.
        local cmd
        printf -v cmd '%q ' "$@"
        su postgres -s /bin/sh -c "$cmd"
    else
        "$@"
    fi
}

if [[ "$action" == "stop" ]]; then
    if [[ -f "$DATA/postmaster.pid" ]]; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
    fi
    exit 0
fi

mkdir -p "$DIR"
if [[ "$(id -u)" == "0" ]]; then
    chown postgres "$DIR"
fi

if [[ ! -f "$DATA/PG_VERSION" ]]; then
    as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres --no-sync >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2
        exit 1
    }
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    # Line 4 of postmaster.pid is the port the running server listens on.
    running_port="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
    if [[ -n "$running_port" && "$running_port" != "$PORT" ]]; then
        echo "PostgreSQL already running in $DATA on port $running_port (not $PORT)" >&2
        PORT="$running_port"
    else
        echo "PostgreSQL already running in $DATA" >&2
    fi
else
    as_pg "$BIN/pg_ctl" -D "$DATA" -w -t 30 -l "$LOG" \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" \
        start >&2 || {
        cat "$LOG" >&2 || true
        exit 1
    }
fi

for _ in $(seq 1 50); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
        echo "postgres://postgres@127.0.0.1:$PORT/postgres"
        exit 0
    fi
    sleep 0.2
done
echo "PostgreSQL did not become ready on port $PORT (log: $LOG)" >&2
exit 1
