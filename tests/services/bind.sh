#!/usr/bin/env bash
# Provide a real BIND 9 (Debian's bind9) on 127.0.0.1 port 5353, authoritative for
# example.com and open to RFC 2136 dynamic updates signed with one TSIG key, for the
# DNS integration tests (tests/integration/test_dns_bind.py). It is also the DNS server
# behind the test bed's Designate (tests/services/openstack.sh): an rndc channel on
# 127.0.0.1:5953 and `allow-new-zones yes` let Designate's bind9 backend add and delete
# the zones it serves (as secondaries, transferred from designate-mdns).
#
# Run as root on a fresh Debian 12 machine. Safe to run again, and safe to run while
# another copy runs (they queue on a lock). A named started by this script that
# still answers is reused as it is; otherwise the packages are installed if missing,
# the config is written under $DOPPEL_BIND_BASE, and named is started detached (apt
# does not start services on these machines, and a system named, if any, is left
# alone: this one has its own ports, its own directory and its own rndc key).
# A running named whose config is older than this script's is reconfigured in place
# (`rndc reconfig`, or SIGHUP when it has no rndc channel yet), never restarted: the
# zones and the updates other tests made stay as they are.
#
# What you get:
#   zone example.com  SOA, NS ns1.example.com, ns1 A 127.0.0.1, shop A 127.0.0.10 (TTL 300)
#   allow-update      only requests signed with key doppel-key (hmac-sha256)
#   $BASE/doppel-key.conf   the key as a named/nsupdate `key` clause (mode 640, root:bind)
#   $BASE/tsig-secret       the base64 secret alone, for the tests (mode 600)
#   rndc                    127.0.0.1:$DOPPEL_BIND_RNDC_PORT (5953), key doppel-rndc in $BASE/rndc.key
#                           (mode 640, root:bind): `rndc -s 127.0.0.1 -p 5953 -k $BASE/rndc.key status`
#   allow-new-zones yes     zones added with `rndc addzone` (Designate) are kept in $BASE/data/_default.nzd
#   dig and nsupdate (dnsutils)
# The secret is never printed; the path of the file that holds it is.
#
# Usage:  bind.sh [start]   install + configure + start + wait until dig gets an answer
#         bind.sh stop      stop the named this script started (pid file)
#         bind.sh status    pid, and what dig answers for shop.example.com
#         bind.sh rndc ARGS  run rndc against this named (e.g. `bind.sh rndc zonestatus example.com`)
#         bind.sh reset     stop, drop the zone's journal (updates made so far), start again
# Environment:
#   DOPPEL_BIND_BASE   config, zone, pid and log directory (default /var/lib/doppel-test/bind)
#   DOPPEL_BIND_PORT   port on 127.0.0.1 (default 5353)
#   DOPPEL_BIND_RNDC_PORT  rndc control channel on 127.0.0.1 (default 5953; 953 may be a system named's)
#   BIND_WAIT_SECONDS  how long to wait for named to answer (default 30)
#   APT_LOCK_SECONDS   how long to wait for another apt/dpkg to finish (default 900)
set -euo pipefail

BASE=${DOPPEL_BIND_BASE:-/var/lib/doppel-test/bind}
PORT=${DOPPEL_BIND_PORT:-5353}
RNDC_PORT=${DOPPEL_BIND_RNDC_PORT:-5953}
RNDC_KEY_NAME=doppel-rndc
HOST=127.0.0.1
ZONE=example.com
KEY_NAME=doppel-key
WAIT_SECONDS=${BIND_WAIT_SECONDS:-30}
APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
LOCK_FILE=/run/lock/doppel-bind-service.lock
PACKAGES="bind9 dnsutils"
CONF=$BASE/named.conf
KEY_CONF=$BASE/doppel-key.conf
SECRET_FILE=$BASE/tsig-secret
RNDC_KEY=$BASE/rndc.key
DATA=$BASE/data
RUN=$BASE/run
LOG=$BASE/log
PID_FILE=$RUN/named.pid
STARTED_AT=$(date +%s.%N)

say() { echo "bind.sh [$(elapsed)s]: $*"; }
fail() { echo "bind.sh: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# shellcheck source=tests/services/pidfile.sh
source "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh"
alive() { pid_alive "$PID_FILE"; }  # a live named, the one that wrote the file
rndc_() { rndc -s "$HOST" -p "$RNDC_PORT" -k "$RNDC_KEY" "$@"; }
rndc_answers() { [ -s "$RNDC_KEY" ] && rndc_ status >/dev/null 2>&1; }

# named answers authoritatively for shop.example.com (dig's exit status alone would also
# accept a SERVFAIL, which is what a named that failed to load the zone says). An
# authoritative NXDOMAIN counts: a test may have deleted the name, and named is fine.
answers() {
    command -v dig >/dev/null || return 1
    local reply
    reply=$(dig @"$HOST" -p "$PORT" +norecurse +time=1 +tries=1 "shop.$ZONE" A 2>/dev/null) || return 1
    grep -Eq 'status: (NOERROR|NXDOMAIN)' <<<"$reply" && grep -Eq 'flags:[^;]* aa' <<<"$reply"
}

# ------------------------------------------------------------------ packages
have_tools() { command -v named >/dev/null && command -v dig >/dev/null && command -v tsig-keygen >/dev/null \
               && command -v nsupdate >/dev/null; }

# Refresh the package lists only when apt has never heard of the packages: an update
# takes a while, and other scripts may be running apt at the same time.
install_packages() {
    if have_tools; then return; fi
    local t0=$SECONDS
    if ! apt-cache show $PACKAGES >/dev/null 2>&1; then
        say "apt does not know $PACKAGES yet; apt-get update"
        apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" update -q >/dev/null
    fi
    say "installing $PACKAGES"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" install -y -q \
        --no-install-recommends $PACKAGES >/dev/null
    have_tools || fail "named, dig, nsupdate or tsig-keygen still missing after installing $PACKAGES"
    say "packages installed in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------ config
# The key is made once and kept: a test run that reuses a running named must read the
# secret that named was started with.
write_key() {
    if [ -s "$KEY_CONF" ] && [ -s "$SECRET_FILE" ]; then return; fi
    umask 077
    tsig-keygen -a hmac-sha256 "$KEY_NAME" >"$KEY_CONF.tmp"
    sed -n 's/^[[:space:]]*secret "\(.*\)";/\1/p' "$KEY_CONF.tmp" >"$SECRET_FILE.tmp"
    [ -s "$SECRET_FILE.tmp" ] || fail "could not read the secret back from tsig-keygen's output"
    chgrp bind "$KEY_CONF.tmp" && chmod 640 "$KEY_CONF.tmp"
    chmod 600 "$SECRET_FILE.tmp"
    mv "$KEY_CONF.tmp" "$KEY_CONF" && mv "$SECRET_FILE.tmp" "$SECRET_FILE"
    umask 022
    say "made TSIG key $KEY_NAME (hmac-sha256)"
}

# The rndc key: named reads it as user bind, rndc (Designate's backend) as root.
write_rndc_key() {
    if [ -s "$RNDC_KEY" ]; then return; fi
    umask 077
    tsig-keygen -a hmac-sha256 "$RNDC_KEY_NAME" >"$RNDC_KEY.tmp"
    chgrp bind "$RNDC_KEY.tmp" && chmod 640 "$RNDC_KEY.tmp"
    mv "$RNDC_KEY.tmp" "$RNDC_KEY"
    umask 022
    say "made rndc key $RNDC_KEY_NAME"
}

write_zone() {
    cat >"$DATA/$ZONE.zone" <<EOF
\$TTL 300
@       IN SOA ns1.$ZONE. hostmaster.$ZONE. ( 1 3600 600 86400 60 )
@       IN NS  ns1.$ZONE.
ns1     IN A   $HOST
shop    IN A   127.0.0.10
EOF
    rm -f "$DATA/$ZONE.zone.jnl"
}

# named.conf as this script wants it, written to $1 (the running config, or a candidate).
write_conf() {
    local out=${1:-$CONF}
    cat >"$out" <<EOF
// Written by tests/services/bind.sh; rewritten on each start.
include "$KEY_CONF";
include "$RNDC_KEY";
options {
    directory "$DATA";
    pid-file "$PID_FILE";
    session-keyfile "$RUN/session.key";
    managed-keys-directory "$DATA";
    listen-on port $PORT { $HOST; };
    listen-on-v6 { none; };
    recursion no;
    allow-query { $HOST; };
    allow-transfer { none; };
    dnssec-validation no;
    notify no;
    // Designate's bind9 backend adds its zones with rndc addzone (kept in _default.nzd)
    allow-new-zones yes;
};
// Not port 953, which a system named may hold.
controls { inet $HOST port $RNDC_PORT allow { $HOST; } keys { "$RNDC_KEY_NAME"; }; };
logging {
    channel doppel { file "$LOG/named.log" versions 2 size 10m; print-time yes; severity info; };
    category default { doppel; };
    category update { doppel; };
    category update-security { doppel; };
};
zone "$ZONE" {
    type primary;
    file "$DATA/$ZONE.zone";
    allow-update { key "$KEY_NAME"; };
};
EOF
    named-checkconf "$out" || fail "named-checkconf rejected $out"
}

# Debian's AppArmor profile for named allows only /etc/bind, /var/lib/bind and
# /var/cache/bind; where it is enforced, let named use this directory as well.
allow_in_apparmor() {
    local profiles=/sys/kernel/security/apparmor/profiles
    [ -r "$profiles" ] && grep -q 'named' "$profiles" 2>/dev/null || return 0
    local local_rules=/etc/apparmor.d/local/usr.sbin.named
    if ! grep -qs "$BASE" "$local_rules"; then
        echo "$BASE/** rwk," >>"$local_rules"
        apparmor_parser -r /etc/apparmor.d/usr.sbin.named && say "AppArmor: named may use $BASE"
    fi
}

configure() {
    mkdir -p "$DATA" "$RUN" "$LOG"
    write_key
    write_rndc_key
    [ -f "$DATA/$ZONE.zone" ] || write_zone
    write_conf
    chown -R bind:bind "$DATA" "$RUN" "$LOG"
    allow_in_apparmor
}

# ------------------------------------------------------------------ life cycle
start_named() {
    local t0
    t0=$(date +%s.%N)
    # named forks into the background itself once its ports are bound; -u drops root.
    named -c "$CONF" -u bind 9>&- || fail "named did not start; see $LOG/named.log"
    for _ in $(seq $((WAIT_SECONDS * 10))); do
        if answers && rndc_answers; then
            say "named answers on $HOST:$PORT after $(awk -v a="$t0" -v b="$(date +%s.%N)" \
                'BEGIN { printf "%.1f", b - a }') s (pid $(cat "$PID_FILE"))"
            return
        fi
        sleep 0.1
    done
    tail -n 20 "$LOG/named.log" >&2 || true
    fail "named did not answer for shop.$ZONE on $HOST:$PORT (or rndc on $RNDC_PORT) within $WAIT_SECONDS s; see $LOG/named.log"
}

stop_named() {
    if alive; then
        local pid
        pid=$(cat "$PID_FILE")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && fail "named (pid $pid) did not stop"
        say "stopped named (pid $pid)"
    fi
    rm -f "$PID_FILE"
}

# A running named keeps running: when its config is not what this script writes now (an
# older bind.sh, without the rndc channel or allow-new-zones), the new config is put in
# place and named told to read it again. `rndc reconfig` reads the config and adds new
# zones without reloading the others; a named without an rndc channel gets SIGHUP, which
# reloads every zone whose file changed: none here (zone files are written once, and the
# dynamic updates live in the journals), so the zones stay as the other tests left them.
reconfigure_running() {
    write_rndc_key
    write_conf "$CONF.next"
    if cmp -s "$CONF.next" "$CONF" && rndc_answers; then rm -f "$CONF.next"; return; fi
    mv "$CONF.next" "$CONF"
    if rndc_answers; then
        rndc_ reconfig >/dev/null || fail "rndc reconfig failed; see $LOG/named.log"
        say "named (pid $(cat "$PID_FILE")) reconfigured with rndc reconfig"
    else
        kill -HUP "$(cat "$PID_FILE")"
        for _ in $(seq $((WAIT_SECONDS * 10))); do rndc_answers && break; sleep 0.1; done
        rndc_answers || fail "named did not open its rndc channel on $HOST:$RNDC_PORT after SIGHUP; see $LOG/named.log"
        say "named (pid $(cat "$PID_FILE")) reloaded its config (SIGHUP); rndc answers on $HOST:$RNDC_PORT"
    fi
    answers || fail "named stopped answering for shop.$ZONE after reading its new config; see $LOG/named.log"
}

start() {
    if alive && answers; then
        say "reusing named (pid $(cat "$PID_FILE")) on $HOST:$PORT"
        reconfigure_running
    else
        install_packages
        stop_named   # a named of ours that no longer answers
        configure
        start_named
    fi
    say "TSIG key $KEY_NAME (hmac-sha256); its secret is in $SECRET_FILE"
    echo "secret_file=$SECRET_FILE"
    echo "key_file=$KEY_CONF"
    echo "rndc_key_file=$RNDC_KEY"
    echo "rndc_port=$RNDC_PORT"
}

main() {
    [ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts named as user bind)"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock 9
    case "${1:-start}" in
        start) start ;;
        stop) stop_named ;;
        status)
            if alive; then echo "named pid $(cat "$PID_FILE")"; else echo "named: not running"; fi
            command -v dig >/dev/null && dig @"$HOST" -p "$PORT" +short "shop.$ZONE" A || true ;;
        reset) stop_named; mkdir -p "$DATA"; write_zone; start ;;
        rndc) shift; rndc_ "$@"; return ;;
        *) fail "usage: bind.sh [start|stop|status|reset|rndc ARGS...]" ;;
    esac
    say "done"
}

main "$@"
