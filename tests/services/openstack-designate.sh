# Designate for the OpenStack test bed: sourced by tests/services/openstack.sh (not run alone), which
# holds the lock and provides B, HERE, IP, PW, PY, RABBIT_URL, SOCK and the helpers bg, alive, stop_one,
# wait_http, dburl, say, fail, stamp, since, authtoken and install_packages.
#
# A real Designate 15 (Zed) from Debian's packages: designate-api on 127.0.0.1:9001 (service type
# "dns" in both regions of the catalog), designate-central, designate-worker, designate-producer and
# designate-mdns on 127.0.0.1:5354. Its one pool, "default", has one target: the BIND 9 of
# tests/services/bind.sh on 127.0.0.1:5353, driven by Designate's bind9 backend over rndc
# (127.0.0.1:5953, key $DOPPEL_BIND_BASE/rndc.key). A zone made in Designate is added to that BIND with
# `rndc addzone` as a secondary of designate-mdns, which BIND transfers it from (AXFR over loopback)
# after mdns's NOTIFY; the worker then asks BIND for the zone's SOA serial and marks the zone or
# recordset ACTIVE once BIND serves it. So `dig @127.0.0.1 -p 5353` is the proof of a switch.
#
# Test-bed choices: one process per service (workers = 1), the worker polls BIND every second instead of
# every 15 (a switch is ACTIVE within ~2 s), no tooz coordination (one producer takes every partition),
# notifications off, the zone quota raised to 1000 per project (test sessions make and delete zones).

DESIGNATE_PORT=9001
MDNS_PORT=5354
BIND_PORT=${DOPPEL_BIND_PORT:-5353}
BIND_BASE=${DOPPEL_BIND_BASE:-/var/lib/doppel-test/bind}
RNDC_PORT=${DOPPEL_BIND_RNDC_PORT:-5953}
RNDC_KEY_FILE=$BIND_BASE/rndc.key
DESIGNATE_PACKAGES="python3-designate bind9-utils"
DESIGNATE_DEBS="designate-common"
DESIGNATE_SERVICES="designate-central designate-worker designate-producer designate-mdns designate-api"
DESIGNATE_CONF=$B/etc/designate/designate.conf
DESIGNATE_POOLS=$B/etc/designate/pools.yaml

# The BIND that serves Designate's zones; bind.sh reuses a running named and, when its config
# predates the rndc channel and allow-new-zones, reconfigures it in place (no restart).
designate_bind() {
  local out
  out=$(bash "$HERE/bind.sh") || fail "tests/services/bind.sh could not provide BIND for Designate"
  grep -qx "rndc_key_file=$RNDC_KEY_FILE" <<<"$out" && grep -qx "rndc_port=$RNDC_PORT" <<<"$out" \
    || fail "tests/services/bind.sh's rndc channel is not at $RNDC_PORT with key $RNDC_KEY_FILE"
}

designate_conf_text() { cat <<EOF
[DEFAULT]
transport_url = $RABBIT_URL
state_path = $B/data/designate
# test sessions make and delete zones; the default is 10 per project
quota_zones = 1000
[oslo_concurrency]
lock_path = $B/data/lock
[oslo_messaging_notifications]
driver = noop
[storage:sqlalchemy]
connection = $(dburl designate)
[service:api]
listen = $IP:$DESIGNATE_PORT
api_base_uri = http://$IP:$DESIGNATE_PORT/
api_paste_config = $B/etc/designate/api-paste.ini
auth_strategy = keystone
enable_api_v2 = true
workers = 1
[service:central]
workers = 1
[service:producer]
workers = 1
[service:mdns]
listen = $IP:$MDNS_PORT
workers = 1
[service:worker]
workers = 1
# test bed: ask BIND for the new serial every second (defaults: after 5 s, then every 15 s)
poll_delay = 1
poll_retry_interval = 1
poll_max_retries = 60
poll_timeout = 5
$(authtoken designate)
EOF
}

designate_pools_text() { cat <<EOF
# Written by tests/services/openstack.sh: Designate's one pool, the BIND of tests/services/bind.sh.
- name: default
  description: BIND 9 of the Doppel test bed (tests/services/bind.sh)
  attributes: {}
  ns_records:
    - hostname: ns1.doppel-test.invalid.
      priority: 1
  nameservers:
    - host: $IP
      port: $BIND_PORT
  targets:
    - type: bind9
      description: BIND 9 on $IP:$BIND_PORT, rndc on $IP:$RNDC_PORT
      masters:
        - host: $IP
          port: $MDNS_PORT
      options:
        host: $IP
        port: $BIND_PORT
        rndc_host: $IP
        rndc_port: $RNDC_PORT
        rndc_key_file: $RNDC_KEY_FILE
        rndc_bin_path: /usr/sbin/rndc
        clean_zonefile: true    # rndc delzone -clean: a deleted zone leaves no file behind
EOF
}

# Whether the running Designate has the config and the pool this script writes now.
designate_current() {
  [ "$(designate_conf_text)" = "$(cat "$DESIGNATE_CONF" 2>/dev/null)" ] \
    && [ "$(designate_pools_text)" = "$(cat "$DESIGNATE_POOLS" 2>/dev/null)" ]
}

designate_db() { # database and schema; idempotent
  mariadb -S "$SOCK" -uroot -e "CREATE DATABASE IF NOT EXISTS designate;"
  $PY "$B/bin/designate-manage" --config-file "$DESIGNATE_CONF" database sync \
    >> "$B/log/designate-manage.out" 2>&1 || fail "designate-manage database sync failed; see $B/log/designate-manage.out"
}

# `designate-manage pool update` asks designate-central over RPC: wait until central consumes its queue (a
# message sent before that is dropped, and the command waits 60 s for nothing).
designate_pool() {
  local i
  for i in $(seq 1 120); do
    rabbitmqctl -q list_queues -p openstack name consumers 2>/dev/null | grep -Eq '^central[[:space:]]+[1-9]' && break
    alive designate-central || { tail -20 "$B/log/designate-central.log" >&2; fail "designate-central died; see $B/log/designate-central.log"; }
    sleep 0.5
  done
  $PY "$B/bin/designate-manage" --config-file "$DESIGNATE_CONF" pool update --file "$DESIGNATE_POOLS" \
    >> "$B/log/designate-manage.out" 2>&1 || fail "designate-manage pool update failed; see $B/log/designate-manage.out"
}

# Install, configure and start what is missing. Designate's own services are restarted only when this
# script's config for them changed (a running designate-worker keeps the pool it loaded first).
designate_start() {
  local t0 n conf_changed=0 pool_changed=0
  t0=$(date +%s.%N)
  install_packages "$DESIGNATE_PACKAGES" "$DESIGNATE_DEBS" designate_install_s
  designate_bind
  mkdir -p "$B/etc/designate" "$B/data/designate"
  cp -f "$B/pkgroot/usr/share/designate-common/api-paste.ini" "$B/etc/designate/api-paste.ini"
  if [ "$(designate_conf_text)" != "$(cat "$DESIGNATE_CONF" 2>/dev/null)" ]; then
    designate_conf_text > "$DESIGNATE_CONF"; conf_changed=1
  fi
  if [ "$(designate_pools_text)" != "$(cat "$DESIGNATE_POOLS" 2>/dev/null)" ]; then
    designate_pools_text > "$DESIGNATE_POOLS"; pool_changed=1
  fi
  designate_db
  stamp designate_configure_s "$(since "$t0")"
  if [ "$conf_changed" = 1 ]; then
    for n in $DESIGNATE_SERVICES; do
      if alive "$n"; then say "restarting $n: its config changed"; stop_one "$n"; fi
    done
  fi
  bg designate-central $PY "$B/bin/designate-central" --config-file "$DESIGNATE_CONF" \
    --log-file "$B/log/designate-central.log"
  if [ "$pool_changed" = 1 ] || ! alive designate-worker; then
    designate_pool
    if alive designate-worker; then say "restarting designate-worker: its pool changed"; stop_one designate-worker; fi
  fi
  for n in $DESIGNATE_SERVICES; do
    bg "$n" $PY "$B/bin/$n" --config-file "$DESIGNATE_CONF" --log-file "$B/log/$n.log"
  done
  wait_http "http://$IP:$DESIGNATE_PORT/" designate-api
  stamp designate_up_s "$(since "$t0")"
}

# For `openstack.sh clean`: the zones Designate added to BIND (kept in BIND's new-zone database) go with
# Designate's database, or BIND would go on asking a designate-mdns that is gone for them.
designate_forget_bind_zones() {
  local nzd=$BIND_BASE/data/_default.nzd zone
  [ -f "$nzd" ] && [ -s "$RNDC_KEY_FILE" ] || return 0
  for zone in $(named-nzd2nzf "$nzd" 2>/dev/null | sed -n 's/^zone "\{0,1\}\([^" ]*\)"\{0,1\} .*/\1/p'); do
    bash "$HERE/bind.sh" rndc delzone -clean "$zone" >/dev/null 2>&1 || true
  done
}
