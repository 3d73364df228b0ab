#!/usr/bin/env bash
# Provide an OpenStack Swift "all in one" with s3api on 127.0.0.1:8080 for the
# integration tests (tests/integration/stores/).
#
# Run as root on a fresh Debian 12 machine. Safe to run again, and safe to run
# while another copy runs (they queue on a lock). A Swift that already answers
# on 127.0.0.1:8080 with tempauth, SLO and s3api is reused as it is; otherwise
# Debian's packages are installed if missing, configured, and the servers are
# started detached (apt does not start services on these machines).
#
# What you get:
#   Swift  http://127.0.0.1:8080/auth/v1.0   user test:tester  key testing (tempauth)
#   S3     http://127.0.0.1:8080 path-style, region us-east-1, SigV4,
#          access key test:tester, secret testing
#   one replica, one device directory under $DOPPEL_SWIFT_BASE (no mount, mount_check off)
#   the zstd CLI and the swift CLI, which docs/restore-by-hand.md relies on
#
# Usage:  swift.sh [start]   install + configure + start + wait until a real round trip works
#         swift.sh stop      stop the servers this script started (pid files)
#         swift.sh status    pids and memory of those servers
#         swift.sh reset     stop, then wipe rings and data (keeps packages)
# Environment:
#   DOPPEL_SWIFT_BASE   data, pid and log directory (default /var/tmp/doppel-swift);
#                       must support user xattrs (ext4, xfs) and be readable by the swift user
#   SWIFT_WAIT_SECONDS  how long to wait for the servers to answer (default 60)
#   APT_LOCK_SECONDS    how long to wait for another apt/dpkg to finish (default 900)
#   PROXY_WORKERS, OBJECT_WORKERS  server worker processes (default 2 each)
set -euo pipefail

BASE=${DOPPEL_SWIFT_BASE:-/var/tmp/doppel-swift}
SRV=$BASE/srv
RUN=$BASE/run
LOG=$BASE/log
ETC=/etc/swift
HOST=127.0.0.1
PORT=8080
WAIT_SECONDS=${SWIFT_WAIT_SECONDS:-60}
APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
PROXY_WORKERS=${PROXY_WORKERS:-2}
OBJECT_WORKERS=${OBJECT_WORKERS:-2}
LOCK_FILE=/run/lock/doppel-swift-service.lock
SERVERS="account container object proxy"
PACKAGES="swift swift-proxy swift-account swift-container swift-object memcached python3-swiftclient curl zstd"
STARTED_AT=$(date +%s.%N)

say() { echo "swift.sh [$(elapsed)s]: $*"; }
fail() { echo "swift.sh: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
now() { date +%s.%N; }
span() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# shellcheck source=tests/services/pidfile.sh
source "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh"
# True when the pid file names a live process, and the one it was written for.
alive() { pid_alive "$1"; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# ------------------------------------------------------------------ health
# Swift is usable when tempauth hands out a token, an object goes in and comes
# back out, /info lists SLO and s3api, and a SigV4-signed S3 request succeeds.
# A bare healthcheck is not enough: the proxy answers it before the rings and
# the backends are ready.
swift_round_trip() {
    local hdr tok url
    hdr=$(curl -fsS -m 5 -D - -o /dev/null -H 'X-Storage-User: test:tester' \
          -H 'X-Storage-Pass: testing' "http://$HOST:$PORT/auth/v1.0" 2>/dev/null) || return 1
    tok=$(echo "$hdr" | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' | tr -d '\r')
    url=$(echo "$hdr" | awk -F': ' 'tolower($1)=="x-storage-url"{print $2}' | tr -d '\r')
    [ -n "$tok" ] && [ -n "$url" ] || return 1
    curl -fsS -m 5 -X PUT -H "X-Auth-Token: $tok" "$url/doppel-health" -o /dev/null 2>/dev/null || return 1
    echo "ok" | curl -fsS -m 5 -X PUT -H "X-Auth-Token: $tok" --data-binary @- \
        "$url/doppel-health/probe" -o /dev/null 2>/dev/null || return 1
    curl -fsS -m 5 -H "X-Auth-Token: $tok" "$url/doppel-health/probe" 2>/dev/null | grep -q '^ok' || return 1
}

features_present() {
    local info
    info=$(curl -fsS -m 5 "http://$HOST:$PORT/info" 2>/dev/null) || return 1
    [[ $info == *'"slo"'* && $info == *'"s3api"'* && $info == *'"tempauth"'* ]]
}

# A SigV4-signed GET of the probe through s3api. curl --aws-sigv4 cannot do it:
# it splits --user at the first colon, and the access key is "test:tester".
s3_round_trip() {
    timeout 10 /usr/bin/python3 - "$HOST" "$PORT" <<'PY' 2>/dev/null
import datetime, hashlib, hmac, sys, urllib.request
host, port = sys.argv[1], sys.argv[2]
access, secret, region, path = "test:tester", "testing", "us-east-1", "/doppel-health/probe"
when = datetime.datetime.now(datetime.timezone.utc)
stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
empty = hashlib.sha256(b"").hexdigest()
headers = {"host": f"{host}:{port}", "x-amz-content-sha256": empty, "x-amz-date": stamp}
signed = ";".join(sorted(headers))
canonical = "\n".join(["GET", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, empty])
scope = f"{day}/{region}/s3/aws4_request"
to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
key = ("AWS4" + secret).encode()
for part in (day, region, "s3", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                            f"SignedHeaders={signed}, Signature={signature}")
request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers)
with urllib.request.urlopen(request, timeout=5) as response:
    sys.exit(0 if response.read().startswith(b"ok") else 1)
PY
}

healthy() { swift_round_trip && features_present && s3_round_trip; }

# ------------------------------------------------------------------ stop / status
stop_all() {
    local s
    for s in proxy object container account memcached; do
        if alive "$RUN/$s.pid"; then
            say "stopping $s (pid $(cat "$RUN/$s.pid"))"
            kill "$(cat "$RUN/$s.pid")" || true
        fi
    done
    for s in proxy object container account memcached; do
        for _ in $(seq 50); do alive "$RUN/$s.pid" || break; sleep 0.2; done
        alive "$RUN/$s.pid" && fail "$s (pid $(cat "$RUN/$s.pid")) did not stop within 10 s"
        rm -f "$RUN/$s.pid"
    done
}

status() {
    local s p pids q rss pss r x
    for s in memcached $SERVERS; do
        if alive "$RUN/$s.pid"; then
            p=$(cat "$RUN/$s.pid")
            pids="$p $( (pgrep -P "$p" || true) | tr '\n' ' ')"
            rss=0; pss=0
            for q in $pids; do
                r=$(awk '/^VmRSS/{print $2}' "/proc/$q/status" 2>/dev/null || echo 0); rss=$((rss + ${r:-0}))
                x=$(awk '/^Pss:/{print $2}' "/proc/$q/smaps_rollup" 2>/dev/null || echo 0); pss=$((pss + ${x:-0}))
            done
            echo "  $s: pids=[$(echo $pids)] rss=$((rss / 1024)) MiB pss=$((pss / 1024)) MiB"
        else
            echo "  $s: not started by this script (or not running)"
        fi
    done
}

# ------------------------------------------------------------------ packages
missing_packages() {
    local p out=""
    for p in $PACKAGES; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || out="$out $p"
    done
    echo "$out"
}

# True when apt knows an installable version of every package named.
packages_known() {
    local p
    for p in "$@"; do
        [[ $(apt-cache policy "$p" 2>/dev/null) == *"Candidate: "[0-9]* ]] || return 1
    done
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" "$@"
}

install_packages() {
    local missing
    missing=$(missing_packages)
    if [ -z "$missing" ]; then
        say "packages already installed"
        return
    fi
    # shellcheck disable=SC2086
    if ! packages_known $missing; then
        say "apt does not know some of:$missing; running apt-get update once"
        apt_get update -q
        # shellcheck disable=SC2086
        packages_known $missing || fail "apt knows no package for some of:$missing even after apt-get update; check /etc/apt/sources.list"
    fi
    say "installing:$missing"
    # shellcheck disable=SC2086
    apt_get install -y -q --no-install-recommends $missing
}

# ------------------------------------------------------------------ configuration
prepare_dirs() {
    getent passwd swift >/dev/null || adduser --system --group --no-create-home --home /var/lib/swift swift
    mkdir -p "$SRV/node/d1" "$RUN" "$LOG" "$ETC" /var/cache/swift /var/run/swift
    chown -R swift:swift "$SRV" /var/cache/swift /var/run/swift
    chmod 755 "$BASE"
    # Swift keeps object metadata in xattrs: fail here, not with a 503 later.
    /usr/bin/python3 - "$SRV/node/d1" <<'EOF' || fail "$SRV does not support user xattrs; set DOPPEL_SWIFT_BASE to a directory on ext4 or xfs"
import os, sys
probe = os.path.join(sys.argv[1], ".xattr_probe")
open(probe, "w").close()
try:
    os.setxattr(probe, "user.swift.probe", b"1")
finally:
    os.unlink(probe)
EOF
}

write_swift_conf() {
    cat > "$ETC/swift.conf" <<'EOF'
[swift-hash]
swift_hash_path_prefix = doppel_saio_prefix
swift_hash_path_suffix = doppel_saio_suffix

[storage-policy:0]
name = Policy-0
default = yes
EOF
}

write_proxy_conf() {
    cat > "$ETC/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = $HOST
bind_port = $PORT
workers = $PROXY_WORKERS
user = swift
log_name = proxy-server
log_level = INFO

[pipeline:main]
# s3api must come before tempauth (it turns the S3 signature into a Swift
# identity that tempauth then checks); slo must be present for s3api's
# multipart uploads, and serves Doppel's own Static Large Objects.
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl ratelimit s3api tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11211

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:ratelimit]
use = egg:swift#ratelimit
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
[filter:symlink]
use = egg:swift#symlink
EOF
}

write_backend_conf() {  # $1 = account|container|object, $2 = port, $3 = workers
    cat > "$ETC/$1-server.conf" <<EOF
[DEFAULT]
devices = $SRV/node
mount_check = false
bind_ip = $HOST
bind_port = $2
workers = $3
user = swift
log_name = $1-server
log_level = INFO

[pipeline:main]
pipeline = healthcheck recon $1-server

[app:$1-server]
use = egg:swift#$1

[filter:healthcheck]
use = egg:swift#healthcheck
[filter:recon]
use = egg:swift#recon
recon_cache_path = /var/cache/swift

[$1-replicator]
[$1-auditor]
EOF
}

write_configs() {
    write_swift_conf
    write_proxy_conf
    write_backend_conf account 6202 1
    write_backend_conf container 6201 1
    write_backend_conf object 6200 "$OBJECT_WORKERS"
    printf '[container-updater]\n[container-sync]\n[container-sharder]\n' >> "$ETC/container-server.conf"
    printf '[object-updater]\n[object-reconstructor]\n' >> "$ETC/object-server.conf"
}

# One replica, one device: rings are built once and kept (rebuilding them
# would move every partition and orphan the data already stored).
build_rings() {
    local r name port
    for r in object:6200 container:6201 account:6202; do
        name=${r%%:*}; port=${r##*:}
        [ -f "$ETC/$name.ring.gz" ] && continue
        say "building the $name ring"
        rm -f "$ETC/$name.builder"
        (cd "$ETC" && swift-ring-builder "$name.builder" create 10 1 1 >/dev/null \
            && swift-ring-builder "$name.builder" add "r1z1-$HOST:$port/d1" 100 >/dev/null)
        (cd "$ETC" && swift-ring-builder "$name.builder" rebalance >/dev/null) || [ $? -eq 1 ]   # 1 = warning only
    done
    chown -R swift:swift "$ETC"
}

# ------------------------------------------------------------------ start
# Servers started with other configs or rings than the ones just written are restarted.
restart_if_config_changed() {
    local sum s
    sum=$(cat "$ETC"/*.conf "$ETC"/*.ring.gz | md5sum | cut -d' ' -f1)
    if [ -f "$RUN/config.md5" ] && [ "$(cat "$RUN/config.md5")" != "$sum" ]; then
        for s in proxy object container account; do
            if alive "$RUN/$s.pid"; then say "configuration changed: restarting $s-server"; kill "$(cat "$RUN/$s.pid")"; fi
        done
        for s in proxy object container account; do
            for _ in $(seq 50); do alive "$RUN/$s.pid" || break; sleep 0.2; done
        done
    fi
    echo "$sum" > "$RUN/config.md5"
}

start_memcached() {
    alive "$RUN/memcached.pid" && return
    if port_open 11211; then
        say "memcached already listens on 11211 (not started here): using it"
        return
    fi
    say "starting memcached"
    # In the foreground, backgrounded by us: `memcached -d -P` cannot write its
    # pid file once it has dropped privileges to the memcache user.
    setsid nohup memcached -u memcache -l "$HOST" -p 11211 -m 64 >>"$LOG/memcached.log" 2>&1 </dev/null 9>&- &
    echo $! > "$RUN/memcached.pid"
}

start_servers() {
    local s
    for s in $SERVERS; do
        if alive "$RUN/$s.pid"; then
            say "$s-server already running (pid $(cat "$RUN/$s.pid"))"
            continue
        fi
        say "starting $s-server"
        # -v logs to stdout too, so no syslog is needed; setsid + nohup detach it
        # from this shell; 9>&- keeps our lock out of the long-lived server.
        setsid nohup "swift-$s-server" "$ETC/$s-server.conf" -v >>"$LOG/$s-server.log" 2>&1 </dev/null 9>&- &
        echo $! > "$RUN/$s.pid"
    done
}

wait_healthy() {
    local deadline s
    deadline=$(( $(date +%s) + WAIT_SECONDS ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        healthy && return 0
        for s in $SERVERS; do
            alive "$RUN/$s.pid" || fail "$s-server exited; last lines of $LOG/$s-server.log:
$(tail -n 20 "$LOG/$s-server.log" 2>/dev/null)"
        done
        sleep 0.3
    done
    status
    fail "Swift did not complete an auth + PUT/GET + S3 round trip within $WAIT_SECONDS s; see $LOG/*.log"
}

print_usage_hints() {
    cat <<EOF
  Swift: swift -A http://$HOST:$PORT/auth/v1.0 -U test:tester -K testing stat
  S3:    endpoint http://$HOST:$PORT, region us-east-1, path-style, SigV4, key test:tester / testing
EOF
}

# ------------------------------------------------------------------ main
[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts servers as the swift user)"
case "${1:-start}" in
    start) ;;
    stop) stop_all; exit 0 ;;
    status) status; exit 0 ;;
    reset) stop_all; rm -rf "$SRV" "$ETC"/*.builder "$ETC"/*.ring.gz "$ETC"/backups "$RUN/config.md5"; say "reset done"; exit 0 ;;
    *) echo "usage: $0 [start|stop|status|reset]" >&2; exit 2 ;;
esac

mkdir -p "$(dirname "$LOCK_FILE")"
exec 9>"$LOCK_FILE"
flock -w "$APT_LOCK_SECONDS" 9 || fail "another swift.sh held $LOCK_FILE for $APT_LOCK_SECONDS s"

if port_open "$PORT"; then
    if healthy; then
        # Tests still need the CLIs: make sure they are there before reusing.
        T0=$(now); install_packages; T1=$(now)
        say "a Swift with s3api already answers on $HOST:$PORT: reusing it (packages $(span "$T0" "$T1")s)"
        print_usage_hints
        exit 0
    fi
    if ! alive "$RUN/proxy.pid"; then
        fail "something that is not a usable Swift (tempauth test:tester, SLO, s3api) listens on $HOST:$PORT; stop it or free the port"
    fi
fi

T0=$(now)
install_packages
T1=$(now)
prepare_dirs
write_configs
build_rings
T2=$(now)
restart_if_config_changed
start_memcached
start_servers
wait_healthy
T3=$(now)
say "healthy: packages $(span "$T0" "$T1")s, config+rings $(span "$T1" "$T2")s, start->healthy $(span "$T2" "$T3")s, total $(elapsed)s"
print_usage_hints
