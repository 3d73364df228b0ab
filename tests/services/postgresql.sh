#!/usr/bin/env bash
# Provide a real PostgreSQL on 127.0.0.1:5432 for the database tests (-m postgresql).
#
# Run as root on a fresh Debian 12 machine. Safe to run again, and safe to run while
# another copy runs (they queue on a lock): a server that already answers on
# 127.0.0.1:5432 is reused as it is (only the test role is made sure of). Otherwise
# Debian's postgresql package is installed if missing, its cluster created if
# missing, set to listen on loopback only, and started with pg_ctlcluster (apt does
# not start services on these machines).
#
# What you get:
#   a role `doppel` (LOGIN CREATEDB) with the password in $DOPPEL_TEST_PG_PASSWORD
#   (default doppel-test; a test server on loopback only), password auth over TCP;
#   pg_dump, pg_restore and psql on the PATH.
# Environment:
#   DOPPEL_TEST_PG_PORT       port (default 5432)
#   DOPPEL_TEST_PG_PASSWORD   the test role's password (default doppel-test)
#   PG_WAIT_SECONDS           how long to wait for the server (default 60)
#   APT_LOCK_SECONDS          how long to wait for another apt/dpkg to finish (default 900)
set -euo pipefail

HOST=127.0.0.1
PORT=${DOPPEL_TEST_PG_PORT:-5432}
PASSWORD=${DOPPEL_TEST_PG_PASSWORD:-doppel-test}
WAIT_SECONDS=${PG_WAIT_SECONDS:-60}
APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
LOCK_FILE=/run/lock/doppel-postgresql-service.lock
STARTED_AT=$(date +%s.%N)

say() { echo "postgresql.sh [$(elapsed)s]: $*"; }
fail() { echo "postgresql.sh: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

answers() { command -v pg_isready >/dev/null && pg_isready -q -h "$HOST" -p "$PORT" -t 2; }

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" "$@"; }

install_package() {
    if [ "$(dpkg-query -W -f='${Status}' postgresql 2>/dev/null)" = "install ok installed" ]; then
        return
    fi
    if [[ $(apt-cache policy postgresql 2>/dev/null) != *"Candidate: "[0-9]* ]]; then
        say "postgresql unknown to apt: running apt-get update once"
        apt_get update -q
    fi
    say "installing postgresql with apt-get"
    apt_get install -y -q --no-install-recommends postgresql postgresql-client
}

# The newest installed major version, and its cluster `main` (created when missing).
cluster() {
    VERSION=$(ls /usr/lib/postgresql | sort -V | tail -1)
    [ -n "$VERSION" ] || fail "no PostgreSQL server under /usr/lib/postgresql after installing"
    if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$VERSION main"; then
        say "creating cluster $VERSION/main"
        pg_createcluster "$VERSION" main --port "$PORT" >/dev/null
    fi
    local conf=/etc/postgresql/$VERSION/main/conf.d/doppel-test.conf
    mkdir -p "$(dirname "$conf")"
    printf "# written by doppel's tests/services/postgresql.sh\nlisten_addresses = '%s'\nport = %s\n" \
        "$HOST" "$PORT" >"$conf"
}

start() {
    if pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
        say "cluster $VERSION/main is online but not answering on $HOST:$PORT yet; waiting"
    else
        say "starting cluster $VERSION/main"
        pg_ctlcluster "$VERSION" main start 9>&-
    fi
    local deadline=$(( $(date +%s) + WAIT_SECONDS ))
    until answers; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "PostgreSQL did not answer on $HOST:$PORT within ${WAIT_SECONDS}s; see /var/log/postgresql/"
        sleep 0.5
    done
}

test_role() {
    su postgres -c "psql -q -v ON_ERROR_STOP=1 -p $PORT -d postgres" <<SQL >/dev/null
SELECT 'CREATE ROLE doppel LOGIN CREATEDB' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'doppel')
\gexec
ALTER ROLE doppel WITH LOGIN CREATEDB PASSWORD '$PASSWORD';
SQL
}

main() {
    [ "$(id -u)" -eq 0 ] || fail "run as root (installs a package and starts a system service)"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock 9
    if answers; then
        test_role
        say "reusing the PostgreSQL already answering on $HOST:$PORT"
        return
    fi
    install_package
    cluster
    start
    test_role
    say "PostgreSQL $VERSION ready on $HOST:$PORT (role doppel)"
}

main "$@"
