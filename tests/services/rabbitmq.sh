#!/usr/bin/env bash
# Provide a RabbitMQ on 127.0.0.1:5672 for the integration tests.
#
# Run as root on a fresh Debian 12 machine. Safe to run again, and safe to run
# while another copy runs (they queue on a lock): a RabbitMQ that already
# answers on 127.0.0.1:5672 is reused as it is. Otherwise the Debian package is
# installed if missing and the node started detached, listening on loopback
# only, with no plugins. apt does not start services on these machines, which
# is why this script starts the node itself.
#
# Environment:
#   RABBITMQ_WAIT_SECONDS  how long to wait for the node to accept AMQP (default 90)
#   APT_LOCK_SECONDS       how long to wait for another apt/dpkg to finish (default 900)
set -euo pipefail

HOST=127.0.0.1
PORT=5672
WAIT_SECONDS=${RABBITMQ_WAIT_SECONDS:-90}
APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
LOCK_FILE=/run/lock/doppel-rabbitmq-service.lock
ENV_FILE=/etc/rabbitmq/rabbitmq-env.conf
STARTED_AT=$(date +%s.%N)

say() { echo "rabbitmq.sh: $*"; }
fail() { echo "rabbitmq.sh: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# True when something accepts TCP connections on the AMQP port.
amqp_answers() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

package_installed() {
    [ "$(dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null)" = "install ok installed" ]
}

# True when apt knows a version of rabbitmq-server it could install.
package_known() {
    local policy
    policy=$(apt-cache policy rabbitmq-server 2>/dev/null)
    [[ $policy == *"Candidate: "[0-9]* ]]
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" "$@"
}

install_package() {
    if package_installed; then
        say "package rabbitmq-server already installed"
        return
    fi
    if ! package_known; then
        say "rabbitmq-server unknown to apt: running apt-get update once"
        apt_get update -q
        package_known || fail "apt knows no rabbitmq-server package even after apt-get update; check /etc/apt/sources.list"
    fi
    say "installing rabbitmq-server with apt-get"
    apt_get install -y -q --no-install-recommends rabbitmq-server
}

# Loopback only (AMQP, Erlang distribution, epmd). Written to the node's env file
# rather than only exported, so it still holds when someone restarts the node later.
listen_on_loopback_only() {
    mkdir -p "$(dirname "$ENV_FILE")"
    touch "$ENV_FILE"
    env_file_default NODE_IP_ADDRESS "$HOST"
    env_file_default SERVER_ADDITIONAL_ERL_ARGS '"-kernel inet_dist_use_interface {127,0,0,1}"'
    export ERL_EPMD_ADDRESS=$HOST  # epmd is started by the node, outside the env file's reach
}

# Add NAME=VALUE to the node's env file unless an operator already set NAME.
env_file_default() {
    grep -q "^$1=" "$ENV_FILE" || echo "$1=$2" >>"$ENV_FILE"
}

# A node may be booting already (started by someone else): start only if not.
node_running() {
    rabbitmqctl -q ping >/dev/null 2>&1
}

start_node() {
    if node_running; then
        # Booting, or its app was stopped (a test that died between stop_app and start_app):
        # start_app is a no-op on a running app and brings a stopped one back.
        say "node already running; making sure its app is started"
        rabbitmqctl -q start_app || say "start_app failed; waiting for the node anyway"
        return
    fi
    say "starting rabbitmq-server -detached"
    rabbitmq-server -detached 9>&-  # the node must not inherit our lock
}

await_amqp() {
    local deadline=$(( $(date +%s) + WAIT_SECONDS ))
    until amqp_answers; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            fail "RabbitMQ did not accept connections on $HOST:$PORT within ${WAIT_SECONDS}s; see /var/log/rabbitmq/ and 'rabbitmqctl status'"
        fi
        sleep 0.5
    done
    rabbitmqctl -q await_startup --timeout "$WAIT_SECONDS" >/dev/null \
        || fail "rabbitmqctl await_startup failed although $HOST:$PORT answers; see /var/log/rabbitmq/"
}

main() {
    [ "$(id -u)" -eq 0 ] || fail "run as root (installs a package and starts a system service)"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock 9

    if amqp_answers; then
        say "reusing the RabbitMQ already answering on $HOST:$PORT ($(elapsed)s)"
        return
    fi
    install_package
    listen_on_loopback_only
    start_node
    await_amqp
    say "RabbitMQ ready on $HOST:$PORT in $(elapsed)s"
}

main "$@"
