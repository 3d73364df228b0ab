#!/usr/bin/env bash
# Provide a real MariaDB on 127.0.0.1:3306 for the database tests (-m mariadb).
#
# Run as root on a fresh Debian 12 machine. Safe to run again, and safe to run while
# another copy runs (they queue on a lock): a server that already answers on
# 127.0.0.1:3306 is reused as it is (only the test user is made sure of). Otherwise
# Debian's mariadb-server is installed if missing and started through its init
# script (apt does not start services on these machines), bound to loopback only.
#
# What you get:
#   a user `doppel`@`127.0.0.1` and @`localhost` with the password in
#   $DOPPEL_TEST_MARIADB_PASSWORD (default doppel-test; a test server on loopback
#   only), allowed to make and drop databases; mariadb and mariadb-dump on the PATH.
# Environment:
#   DOPPEL_TEST_MARIADB_PASSWORD  the test user's password (default doppel-test)
#   MARIADB_WAIT_SECONDS          how long to wait for the server (default 60)
#   APT_LOCK_SECONDS              how long to wait for another apt/dpkg to finish (default 900)
set -euo pipefail

HOST=127.0.0.1
PORT=3306
PASSWORD=${DOPPEL_TEST_MARIADB_PASSWORD:-doppel-test}
WAIT_SECONDS=${MARIADB_WAIT_SECONDS:-60}
APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
LOCK_FILE=/run/lock/doppel-mariadb-service.lock
CONF=/etc/mysql/mariadb.conf.d/90-doppel-test.cnf
STARTED_AT=$(date +%s.%N)

say() { echo "mariadb.sh [$(elapsed)s]: $*"; }
fail() { echo "mariadb.sh: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

answers() { command -v mariadb-admin >/dev/null && mariadb-admin --protocol=tcp -h "$HOST" -P "$PORT" -u nobody --connect-timeout=2 ping 2>&1 | grep -qE "alive|Access denied"; }

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" "$@"; }

install_package() {
    if [ "$(dpkg-query -W -f='${Status}' mariadb-server 2>/dev/null)" = "install ok installed" ]; then
        return
    fi
    if [[ $(apt-cache policy mariadb-server 2>/dev/null) != *"Candidate: "[0-9]* ]]; then
        say "mariadb-server unknown to apt: running apt-get update once"
        apt_get update -q
    fi
    say "installing mariadb-server with apt-get"
    apt_get install -y -q --no-install-recommends mariadb-server mariadb-client
}

start() {
    mkdir -p "$(dirname "$CONF")"
    printf "# written by doppel's tests/services/mariadb.sh\n[mysqld]\nbind-address = %s\nport = %s\n" \
        "$HOST" "$PORT" >"$CONF"
    say "starting mariadb"
    /etc/init.d/mariadb start 9>&- >/dev/null || say "the init script said it failed; waiting for the server anyway"
    local deadline=$(( $(date +%s) + WAIT_SECONDS ))
    until answers; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "MariaDB did not answer on $HOST:$PORT within ${WAIT_SECONDS}s; see /var/log/mysql/ and journal"
        sleep 0.5
    done
}

test_user() {
    mariadb --protocol=socket -u root <<SQL
CREATE USER IF NOT EXISTS 'doppel'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
CREATE USER IF NOT EXISTS 'doppel'@'localhost' IDENTIFIED BY '$PASSWORD';
ALTER USER 'doppel'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
ALTER USER 'doppel'@'localhost' IDENTIFIED BY '$PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'doppel'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'doppel'@'localhost';
SQL
}

main() {
    [ "$(id -u)" -eq 0 ] || fail "run as root (installs a package and starts a system service)"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock 9
    if answers; then
        test_user
        say "reusing the MariaDB already answering on $HOST:$PORT"
        return
    fi
    install_package
    start
    test_user
    say "MariaDB ready on $HOST:$PORT (user doppel)"
}

main "$@"
