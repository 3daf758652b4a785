#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at 127.0.0.1:5432, user postgres, trust auth: the
# warehouse tests (tests/fixtures/postgres.py) use it. Idempotent: returns at once when a
# server already answers there.
#
# In order: start the Debian cluster if there is one (installing the postgresql package first
# when no server is installed and we are root); if that cluster does not let postgres in
# without a password from 127.0.0.1, stop it again and run a private trust-auth cluster
# under /var/tmp/review-ingest-pg instead.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
PRIVATE_DIR=/var/tmp/review-ingest-pg
WAIT_SECONDS=30

log() { echo "ensure_postgres: $*" >&2; }

answers() {
    local pg_isready
    pg_isready=$(command -v pg_isready || echo "$(server_bindir)/pg_isready")
    [[ -x "$pg_isready" ]] && "$pg_isready" -q -h "$HOST" -p "$PORT"
}

# Whether postgres gets in from 127.0.0.1 without a password (unknown without psql: yes).
trusts_postgres() {
    ! command -v psql >/dev/null ||
        psql -X -w -q -h "$HOST" -p "$PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1
}

wait_until_it_answers() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until answers; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
}

server_bindir() {
    local pg_ctl
    pg_ctl=$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -z "$pg_ctl" ]]; then
        pg_ctl=$(command -v pg_ctl || true)
    fi
    [[ -n "$pg_ctl" ]] && dirname "$(readlink -f "$pg_ctl")"
}

debian_cluster_version() {
    local version
    for version in $(ls /etc/postgresql 2>/dev/null | sort -V); do
        if [[ -d "/etc/postgresql/$version/main" ]]; then
            echo "$version"
            return 0
        fi
    done
    return 1
}

install_server() {
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
        log "no PostgreSQL server installed, and installing one needs root and apt-get:" \
            "run 'sudo apt-get install -y postgresql', or set REVIEW_INGEST_TEST_PG_URL"
        exit 1
    fi
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
}

as_postgres() {
    if [[ "$(id -u)" -ne 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

start_private_cluster() {
    local bindir=$1 data="$PRIVATE_DIR/data"
    if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        log "no 'postgres' user to run the private cluster as (initdb refuses root)"
        exit 1
    fi
    mkdir -p "$PRIVATE_DIR"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres: "$PRIVATE_DIR"
    fi
    cd "$PRIVATE_DIR" # postgres may not enter the caller's working directory
    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "creating a private trust-auth cluster in $data"
        as_postgres "$bindir/initdb" -D "$data" -A trust -U postgres >"$PRIVATE_DIR/initdb.log"
    fi
    log "starting the private cluster (log: $PRIVATE_DIR/server.log)"
    as_postgres "$bindir/pg_ctl" -D "$data" -l "$PRIVATE_DIR/server.log" -w -t "$WAIT_SECONDS" \
        -o "-p $PORT -k /tmp -h $HOST" start >&2 ||
        log "pg_ctl start failed: $(tail -n5 "$PRIVATE_DIR/server.log" 2>/dev/null)"
}

if answers; then
    if ! trusts_postgres; then
        log "warning: a server answers at $HOST:$PORT but user postgres needs a password there"
    fi
    exit 0
fi

if [[ -z "$(server_bindir)" ]] && ! debian_cluster_version >/dev/null; then
    install_server
fi

if version=$(debian_cluster_version); then
    log "starting the Debian cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        log "pg_ctlcluster $version main start failed"
    if wait_until_it_answers && ! trusts_postgres; then
        log "cluster $version/main wants a password from $HOST: using a private cluster instead"
        pg_ctlcluster --skip-systemctl-redirect "$version" main stop
    fi
fi

if ! answers; then
    bindir=$(server_bindir) || {
        log "no pg_ctl found: cannot start a PostgreSQL server"
        exit 1
    }
    start_private_cluster "$bindir"
fi

if ! wait_until_it_answers; then
    log "still no server answering at $HOST:$PORT after ${WAIT_SECONDS} s;" \
        "see /var/log/postgresql/ or $PRIVATE_DIR/server.log"
    exit 1
fi
if ! trusts_postgres; then
    log "a server answers at $HOST:$PORT but user postgres cannot log in without a password"
    exit 1
fi
log "PostgreSQL answers at $HOST:$PORT"
