#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, on 127.0.0.1 only, for the cluster chaos tests and bench/chaos.py:
#
#   node               AMQP             Erlang distribution
#   rabbit-c1@localhost 127.0.0.1:5681   25681
#   rabbit-c2@localhost 127.0.0.1:5682   25682
#   rabbit-c3@localhost 127.0.0.1:5683   25683
#
#   bash tests/services/rabbitmq-cluster.sh         start it, or reuse it (a node found down is started again)
#   bash tests/services/rabbitmq-cluster.sh stop    stop the three nodes (their data stays, the next start is quick)
#   bash tests/services/rabbitmq-cluster.sh urls    print the AMQP URLs, comma-separated (DOPPEL_AMQP_URL)
#
# It leaves the single node of tests/services/rabbitmq.sh (rabbit@<host> on 5672) alone: every node here has its
# own name, ports, data and log directories under $BASE, its own (empty) env file, config file and plugin list,
# so /etc/rabbitmq/ is not read. They share the rabbitmq user's Erlang cookie and the one epmd (on 127.0.0.1).
# Each node runs with one scheduler (+S 1:1) and no busy-waiting, to stay light on a shared 2-core machine.
# Measured on such a machine: 42 s to start and join from nothing, 21 s to start the stopped nodes again, 8-10 s
# to find them running; ~150 MiB resident per node.
#
# Environment:
#   RABBITMQ_CLUSTER_WAIT_SECONDS  how long to wait for a node to boot (default 120)
set -euo pipefail

BASE=/var/lib/doppel-rabbitmq-cluster
NODES=(1 2 3)
WAIT_SECONDS=${RABBITMQ_CLUSTER_WAIT_SECONDS:-120}
LOCK_FILE=/run/lock/doppel-rabbitmq-cluster.lock
DLX_CONFIRM_TIMEOUT_MS=5000
STARTED_AT=$(date +%s.%N)

say() { echo "rabbitmq-cluster.sh: $*"; }
fail() { echo "rabbitmq-cluster.sh: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

node_name() { echo "rabbit-c$1@localhost"; }
amqp_port() { echo $((5680 + $1)); }

# rabbitmqctl run as the rabbitmq user (its cookie), aimed at node N.
ctl() {
    local n=$1
    shift
    runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf" \
        /usr/lib/rabbitmq/bin/rabbitmqctl -n "$(node_name "$n")" "$@"
}

node_running() { ctl "$1" -q ping >/dev/null 2>&1; }

amqp_answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$(amqp_port "$1")" 2>/dev/null; }

prepare_dirs() {
    mkdir -p "$BASE/mnesia" "$BASE/log"
    [ -f "$BASE/rabbitmq-env.conf" ] || echo "# the cluster's nodes are configured by tests/services/rabbitmq-cluster.sh" \
        >"$BASE/rabbitmq-env.conf"
    [ -f "$BASE/enabled_plugins" ] || echo "[]." >"$BASE/enabled_plugins"
    # Quorum queues: a node that comes back catches up from the log; keep the segments small on a test machine.
    [ -f "$BASE/rabbitmq.conf" ] || printf 'loopback_users.guest = true\ncluster_partition_handling = pause_minority\n' \
        >"$BASE/rabbitmq.conf"
    chown -R rabbitmq:rabbitmq "$BASE"
}

start_node() {
    local n=$1 name port
    name=$(node_name "$n")
    port=$(amqp_port "$n")
    say "starting $name on 127.0.0.1:$port"
    runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf" \
        RABBITMQ_NODENAME="$name" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" \
        RABBITMQ_DIST_PORT=$((25680 + n)) \
        RABBITMQ_MNESIA_BASE="$BASE/mnesia" RABBITMQ_LOG_BASE="$BASE/log" \
        RABBITMQ_PID_FILE="$BASE/rabbit-c$n.pid" \
        RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +S 1:1 +A 4 +sbwt none +sbwtdcpu none +sbwtdio none" \
        /usr/lib/rabbitmq/bin/rabbitmq-server -detached 9>&- \
        >>"$BASE/log/rabbit-c$n.startup.log" 2>&1
}

await_node() {
    local n=$1 deadline=$(( $(date +%s) + WAIT_SECONDS ))
    until node_running "$n"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$(node_name "$n") did not start within ${WAIT_SECONDS}s; see $BASE/log/"
        sleep 0.5
    done
    ctl "$n" -q await_startup --timeout "$WAIT_SECONDS" >/dev/null \
        || fail "$(node_name "$n") did not finish booting; see $BASE/log/"
}

# The node names that node N says are running in its cluster.
running_nodes() {
    ctl "$1" -q cluster_status --formatter json 2>/dev/null \
        | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["running_nodes"])))' 2>/dev/null
}

joined() {
    local running
    running=$(running_nodes 1)
    [[ " $running " == *" $(node_name "$1") "* ]]
}

join_node() {
    local n=$1
    say "joining $(node_name "$n") to $(node_name 1)"
    {
        ctl "$n" -q stop_app && ctl "$n" -q reset && ctl "$n" -q join_cluster "$(node_name 1)" \
            && ctl "$n" -q start_app && ctl "$n" -q await_startup --timeout "$WAIT_SECONDS"
    } >>"$BASE/log/join.log" 2>&1 || fail "$(node_name "$n") could not join $(node_name 1); see $BASE/log/join.log"
}

start_cluster() {
    [ "$(id -u)" -eq 0 ] || fail "run as root (starts nodes as the rabbitmq user)"
    command -v rabbitmqctl >/dev/null || bash "$(dirname "$0")/rabbitmq.sh"  # installs the package
    prepare_dirs
    local n
    # Start every node that is not running first: a member that was stopped waits for its peers as it boots.
    for n in "${NODES[@]}"; do
        node_running "$n" || start_node "$n"
    done
    for n in "${NODES[@]}"; do
        await_node "$n"
    done
    for n in "${NODES[@]:1}"; do
        joined "$n" || join_node "$n"
    done
    for n in "${NODES[@]}"; do
        amqp_answers "$n" || fail "$(node_name "$n") runs but 127.0.0.1:$(amqp_port "$n") does not answer"
        # A message a quorum queue dead-letters (Doppel's delay queues, at least once) to a queue that loses its
        # leader meanwhile is sent again only after this long without a confirm: 3 minutes by default, 5 s here.
        ctl "$n" -q eval "application:set_env(rabbit, dead_letter_worker_publisher_confirm_timeout, $DLX_CONFIRM_TIMEOUT_MS)." \
            >/dev/null
    done
    say "cluster ready ($(running_nodes 1)) on 127.0.0.1:5681-5683 in $(elapsed)s"
}

stop_cluster() {
    local n
    for n in "${NODES[@]}"; do
        if node_running "$n"; then
            say "stopping $(node_name "$n")"
            # A node restarted by hand can make `stop` complain about its pid file although it stops: what counts
            # is that it no longer answers.
            ctl "$n" -q stop >>"$BASE/log/stop.log" 2>&1 || true
            if node_running "$n"; then
                fail "$(node_name "$n") still runs after rabbitmqctl stop; see $BASE/log/stop.log"
            fi
        fi
    done
}

urls() {
    local n out=""
    for n in "${NODES[@]}"; do
        out+="${out:+,}amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2F"
    done
    echo "$out"
}

main() {
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    case "${1:-start}" in
        start) flock 9; start_cluster ;;
        stop) flock 9; stop_cluster ;;
        urls) urls ;;
        *) fail "unknown argument $1 (start, stop or urls)" ;;
    esac
}

main "$@"
