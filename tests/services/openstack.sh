#!/usr/bin/env bash
# Provide a real OpenStack control plane on loopback for the OpenStack integration
# tests (tests/integration/openstack/): Keystone, Glance (file store), Placement,
# Nova (fake virt driver), neutron-server (API only), Heat, Cinder (fake volume
# driver), Swift behind Keystone (a second proxy on :8081 over the rings of
# tests/services/swift.sh), Gnocchi + Aodh (WITH_AODH=0 to skip), and Designate with the
# BIND 9 of tests/services/bind.sh as its DNS server (WITH_DESIGNATE=0 to skip; see
# tests/services/openstack-designate.sh).
#
# Two regions: RegionOne and RegionTwo. RegionTwo's endpoints are the same processes on the
# same ports (a second copy of every service would double the ~2.8 GiB and the start-up
# time): a region here is a name in Keystone's catalog, so code that connects "to the DR
# region" exercises region selection, and what keeps DR apart from production is the
# project. The DR side is its own project, doppel-dr, with its own user (member only):
# nothing of production's project (admin) is visible from there.
#
# Run as root on a fresh Debian 12 machine. Safe to run again and concurrently
# (a lock queues callers): a control plane whose processes are all alive and whose
# APIs answer is reused as it is; what is missing (Designate, the second region, the DR
# project on a bed started by an older version of this script) is added beside the
# running services, which are never stopped. Only Debian's python3-<service> library packages
# are installed with apt; the service packages' entry points and paste files are
# unpacked from their .deb files into $BASE/pkgroot (the service packages carry
# debconf prompts and init scripts that do not fit a test bed).
#
# The services run on /usr/bin/python3 (Debian's), never on a pyenv python.
# Notifications: nova, heat and glance send oslo.messaging notifications
# (messagingv2, topic "notifications") to the "openstack" vhost of the RabbitMQ
# on 127.0.0.1:5672 (tests/services/rabbitmq.sh); `doppel listen openstack` reads them.
# Cinder's are off (they break volume creation with Debian 12's packages; see its config).
#
# Test-bed departures from a stock install, each explained where it is made: Nova's fake
# hypervisor is subclassed to upload snapshot images (a real one does; the fake leaves them
# queued, unusable), Heat uses password deferred auth (trusts break stack updates on this
# build), Keystone caches tokens in memory and hashes passwords cheaply.
#
# What you get:
#   clouds.yaml   $CLOUDS_YAML (default /etc/doppel-test/clouds.yaml):
#                 cloud "doppel-test"     production's side: region RegionOne, user admin / project admin
#                 cloud "doppel-test-dr"  the DR side: region RegionTwo, user doppel-dr / project doppel-dr
#   Designate     http://127.0.0.1:9001 (service type dns, both regions); its zones are served by
#                 the BIND on 127.0.0.1:5353: dig @127.0.0.1 -p 5353 NAME
#   notifications amqp://openstack:<pw>@127.0.0.1:5672/openstack  (also in $BASE/notifications.url)
#   timings       printed, and kept in $BASE/timings.txt
#
# Usage:  openstack.sh [start]  install, configure, start, wait until healthy (idempotent)
#         openstack.sh restart NAME...  rewrite configs, restart those services (e.g. cinder-volume)
#         openstack.sh stop     stop what this script started
#         openstack.sh status   liveness and memory of each service
#         openstack.sh clean    stop, and wipe state (database, data, configs); packages stay
# Environment:
#   DOPPEL_OPENSTACK_BASE  state, config, logs (default /var/tmp/doppel-openstack)
#   CLOUDS_YAML            where to write clouds.yaml (default /etc/doppel-test/clouds.yaml)
#   WITH_AODH=0            skip gnocchi + aodh
#   WITH_DESIGNATE=0       skip designate (and the BIND it drives)
#   APT_LOCK_SECONDS       wait for another apt/dpkg (default 900)
set -euo pipefail

B=${DOPPEL_OPENSTACK_BASE:-/var/tmp/doppel-openstack}
CLOUDS_YAML=${CLOUDS_YAML:-/etc/doppel-test/clouds.yaml}
WITH_AODH=${WITH_AODH:-1}
WITH_DESIGNATE=${WITH_DESIGNATE:-1}
REGION2=RegionTwo
DR_PROJECT=doppel-dr
DR_USER=doppel-dr
APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PW=doppel-test-only
IP=127.0.0.1
SWIFT_KS_PORT=8081
RABBIT_URL="rabbit://openstack:$PW@127.0.0.1:5672/openstack"
SOCK=$B/run/mysqld.sock
PY=/usr/bin/python3
NOVA_TESTBED_DRIVER=/usr/lib/python3/dist-packages/nova/virt/doppel_testbed_virt.py
LOCK_FILE=${DOPPEL_OPENSTACK_LOCK:-/run/lock/doppel-openstack-service.lock}
export DEBIAN_FRONTEND=noninteractive
STARTED_AT=$(date +%s.%N)

elapsed() { awk -v a="$STARTED_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "openstack.sh [$(elapsed)s]: $*"; }
fail() { echo "openstack.sh: ERROR: $*" >&2; exit 1; }
stamp() { echo "$(date -u +%FT%TZ) $1 $2" >> "$B/timings.txt"; say "timing: $1 = $2"; }
dburl() { echo "mysql+pymysql://os:$PW@localhost/$1?unix_socket=$SOCK&charset=utf8"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

PACKAGES="mariadb-server python3-pymysql uwsgi-core uwsgi-plugin-python3 python3-keystone python3-glance
  python3-placement python3-nova python3-neutron python3-heat python3-cinder python3-keystonemiddleware
  python3-openstacksdk curl"
SERVICE_DEBS="keystone nova-common nova-api nova-compute nova-conductor nova-scheduler glance-common glance-api
  heat-common heat-api heat-engine placement-common placement-api neutron-common neutron-server cinder-common
  cinder-api cinder-scheduler cinder-volume"
if [ "$WITH_AODH" = 1 ]; then
  PACKAGES="$PACKAGES python3-aodh python3-gnocchi"
  SERVICE_DEBS="$SERVICE_DEBS aodh-common aodh-api aodh-evaluator aodh-notifier gnocchi-common gnocchi-api gnocchi-metricd"
fi

# ------------------------------------------------------------------ install
install_packages() { # apt-packages service-debs timing-name
  local t0 missing="" p
  t0=$(date +%s.%N)
  for p in $1; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    say "installing:$missing"
    apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" -q -y install --no-install-recommends $missing >/dev/null \
      || { apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" -q update >/dev/null;
           apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" -q -y install --no-install-recommends $missing >/dev/null; } \
      || fail "apt-get could not install:$missing"
  fi
  mkdir -p "$B/debs" "$B/pkgroot" "$B/bin"
  ( cd "$B/debs"
    for p in $2; do
      ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null 2>&1 || fail "apt-get download $p failed"
    done
    for f in *.deb; do [ -e "$B/pkgroot/.$f" ] || { dpkg-deb -x "$f" "$B/pkgroot"; touch "$B/pkgroot/.$f"; }; done )
  cp -f "$B"/pkgroot/usr/bin/* "$B/bin/"
  stamp "$3" "$(since "$t0")"
}

# ------------------------------------------------------------------ processes
# shellcheck source=tests/services/pidfile.sh
source "$HERE/pidfile.sh"
alive() { pid_alive "$B/run/$1.pid"; }  # a live process, and the one the file was written for
bg() { # name command...: start in its own session with a pid file, unless alive
  local name=$1; shift
  if alive "$name"; then return; fi
  # 9>&-: the service must not inherit this script's lock, or the next run waits forever
  setsid nohup "$@" >> "$B/log/$name.out" 2>&1 < /dev/null 9>&- &
  echo $! > "$B/run/$name.pid"
}
uwsgi_bg() { # name port wsgi-file [env...]
  local name=$1 port=$2 file=$3; shift 3
  bg "$name" env "$@" /usr/bin/uwsgi --plugin python3 --http-socket "$IP:$port" --wsgi-file "$file" \
    --master --processes 1 --threads 4 --enable-threads --lazy-apps --die-on-term --buffer-size 65535 \
    --need-app --add-header "Connection: close"
}
wait_http() { # url name [seconds]
  local i
  for i in $(seq 1 "${3:-120}"); do
    curl -s -o /dev/null -m 3 "$1" && return 0
    alive "$2" || { tail -20 "$B/log/$2.out" >&2; fail "$2 died while starting; see $B/log/$2.out and $B/log/$2.log"; }
    sleep 1
  done
  fail "$2 did not answer on $1 within ${3:-120}s; see $B/log/$2.out"
}
SERVICES="keystone placement glance-api neutron-server nova-api nova-conductor nova-scheduler nova-compute
  heat-api heat-engine cinder-api cinder-scheduler cinder-volume swift-keystone-proxy"
[ "$WITH_AODH" = 1 ] && SERVICES="$SERVICES gnocchi-api gnocchi-metricd aodh-api aodh-evaluator aodh-notifier"
CORE_SERVICES=$SERVICES
# shellcheck source=tests/services/openstack-designate.sh
source "$HERE/openstack-designate.sh"
if [ "$WITH_DESIGNATE" = 1 ]; then
  SERVICES="$SERVICES $DESIGNATE_SERVICES"
  # one apt transaction on a fresh machine; designate_start finds them installed
  PACKAGES="$PACKAGES $DESIGNATE_PACKAGES"
  SERVICE_DEBS="$SERVICE_DEBS $DESIGNATE_DEBS"
fi

all_alive() { local n; for n in mysqld $SERVICES; do alive "$n" || return 1; done; }
core_alive() { local n; for n in mysqld $CORE_SERVICES; do alive "$n" || return 1; done; }

# ------------------------------------------------------------------ rabbitmq, mariadb
rabbit_setup() {
  bash "$HERE/rabbitmq.sh" >/dev/null || fail "tests/services/rabbitmq.sh could not provide RabbitMQ"
  rabbitmqctl -q list_vhosts | grep -qx openstack || rabbitmqctl -q add_vhost openstack
  rabbitmqctl -q list_users | grep -q '^openstack\b' || rabbitmqctl -q add_user openstack "$PW"
  rabbitmqctl -q set_permissions -p openstack openstack '.*' '.*' '.*'
  # The services' own notifications.info queues fill when nobody else reads them: keep them short.
  rabbitmqctl -q set_policy -p openstack --apply-to queues cap-notifications '^notifications\.' \
    '{"max-length":1000}' >/dev/null
  echo "amqp://openstack:$PW@127.0.0.1:5672/openstack" > "$B/notifications.url"
}

start_mysql() {
  if [ ! -d "$B/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$B/mysql" --skip-test-db \
      --auth-root-authentication-method=socket > "$B/log/mysql-install.log" 2>&1
  fi
  bg mysqld /usr/sbin/mariadbd --no-defaults --user=root --datadir="$B/mysql" --socket="$SOCK" --skip-networking \
    --pid-file="$B/run/mysqld.real.pid" --log-error="$B/log/mysqld.log" --character-set-server=utf8 \
    --collation-server=utf8_general_ci --max-connections=1000 --innodb-buffer-pool-size=256M \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --skip-log-bin --skip-name-resolve
  local i
  for i in $(seq 1 120); do mariadb -S "$SOCK" -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb -S "$SOCK" -uroot -e "select 1" >/dev/null || fail "MariaDB did not start; see $B/log/mysqld.log"
  local sql="CREATE USER IF NOT EXISTS 'os'@'localhost' IDENTIFIED BY '$PW'; GRANT ALL PRIVILEGES ON *.* TO 'os'@'localhost';"
  for db in keystone glance placement nova_api nova nova_cell0 neutron heat cinder aodh gnocchi; do
    sql="$sql CREATE DATABASE IF NOT EXISTS $db;"
  done
  mariadb -S "$SOCK" -uroot -e "$sql"
}

# ------------------------------------------------------------------ configuration
authtoken() { cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://$IP:5000
auth_url = http://$IP:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $PW
region_name = RegionOne
service_token_roles_required = true
memcached_servers = 127.0.0.1:11211
EOF
}
ksauth() { cat <<EOF
[$1]
auth_url = http://$IP:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $PW
region_name = RegionOne
EOF
}
notifications() { cat <<EOF
[oslo_messaging_notifications]
driver = messagingv2
topics = notifications
EOF
}

write_configs() {
  mkdir -p "$B"/etc/{keystone,glance,placement,nova,neutron,heat,cinder,swift} \
    "$B"/data/{keystone,glance/images,glance/staging,glance/tasks,nova/instances,neutron,heat,cinder,lock}
  cat > "$B/etc/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $B/log/keystone.log
[database]
connection = $(dburl keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $B/data/keystone/fernet-keys
[fernet_receipts]
key_repository = $B/data/keystone/fernet-keys
[credential]
key_repository = $B/data/keystone/credential-keys
[cache]
# without a cache token validation takes ~1 s on 2 cores; with it ~10 ms
enabled = true
backend = dogpile.cache.memory
[identity]
# test bed only: cheap password hashing keeps token issue fast
password_hash_rounds = 4
EOF
  cat > "$B/etc/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $B/log/placement.log
[placement_database]
connection = $(dburl placement)
[api]
auth_strategy = keystone
$(authtoken placement)
EOF
  cp -f "$B/pkgroot/usr/share/glance-common/glance-api-paste.ini" "$B/etc/glance/"
  cp -f "$B/pkgroot/usr/share/glance-common/schema-image.json" "$B/etc/glance/" 2>/dev/null || true
  cat > "$B/etc/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9292
workers = 0
log_file = $B/log/glance-api.log
enabled_backends = file:file
transport_url = $RABBIT_URL
[database]
connection = $(dburl glance)
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $B/data/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $B/data/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $B/data/glance/tasks/
[paste_deploy]
flavor = keystone
config_file = $B/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $B/data/lock
$(notifications)
$(authtoken glance)
EOF
  cp -f "$B/pkgroot/usr/share/nova-common/api-paste.ini" "$B/etc/nova/api-paste.ini"
  cat > "$B/etc/nova/nova.conf" <<EOF
[DEFAULT]
compute_driver = fake.FakeDriver
host = doppel-osbed
my_ip = $IP
transport_url = $RABBIT_URL
state_path = $B/data/nova
instances_path = $B/data/nova/instances
enabled_apis = osapi_compute
osapi_compute_listen = $IP
osapi_compute_listen_port = 8774
osapi_compute_workers = 1
heal_instance_info_cache_interval = -1
update_resources_interval = 60
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $B/etc/nova/api-paste.ini
[api_database]
connection = $(dburl nova_api)
[database]
connection = $(dburl nova)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 5
[oslo_concurrency]
lock_path = $B/data/lock
[notifications]
# legacy event types (compute.instance.snapshot.end), which the listener reads
notification_format = unversioned
$(notifications)
[glance]
region_name = RegionOne
[cinder]
os_region_name = RegionOne
$(authtoken nova)
$(ksauth placement nova)
$(ksauth neutron neutron)
$(ksauth service_user nova)
send_service_user_token = false
EOF
  # Nova's fake virt driver never uploads a snapshot's data, so its images stay queued and
  # cannot boot anything (Heat and Nova want active images). This test-bed hypervisor does
  # what libvirt does after a snapshot: upload the disk (64 KiB of zeros) to Glance.
  # Nova loads compute drivers from the nova.virt package only, so the module goes there
  # (a file no Debian package owns; `clean` removes it).
  cat > "$NOVA_TESTBED_DRIVER" <<'PYEOF'
"""Nova's fake virt driver, uploading snapshot images as a real hypervisor does (test bed only)."""
import io

from nova.image import glance
from nova.virt import fake


class UploadingFakeDriver(fake.FakeDriver):
    def snapshot(self, context, instance, image_id, update_task_state):
        super().snapshot(context, instance, image_id, update_task_state)
        glance.API().update(context, image_id, {"disk_format": "raw", "container_format": "bare"},
                            data=io.BytesIO(b"\0" * 65536), purge_props=False)
PYEOF
  sed -i 's/^compute_driver = fake.FakeDriver$/compute_driver = doppel_testbed_virt.UploadingFakeDriver/' "$B/etc/nova/nova.conf"
  # nova-compute must not see database URLs (it refuses DB access)
  awk '/^\[/{skip=($0=="[database]"||$0=="[api_database]")} !skip' "$B/etc/nova/nova.conf" > "$B/etc/nova/nova-compute.conf"
  cp -f "$B/pkgroot/usr/share/neutron-common/api-paste.ini" "$B/etc/neutron/api-paste.ini"
  cat > "$B/etc/neutron/neutron.conf" <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9696
core_plugin = ml2
service_plugins =
auth_strategy = keystone
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = $RABBIT_URL
state_path = $B/data/neutron
api_paste_config = $B/etc/neutron/api-paste.ini
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
log_file = $B/log/neutron-server.log
[database]
connection = $(dburl neutron)
[oslo_concurrency]
lock_path = $B/data/lock
[oslo_messaging_notifications]
driver = noop
[agent]
root_helper = true
$(authtoken neutron)
[ml2]
type_drivers = flat,vlan
tenant_network_types =
mechanism_drivers =
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
EOF
  cp -f "$B/pkgroot/etc/heat/api-paste.ini" "$B/etc/heat/api-paste.ini"
  cat > "$B/etc/heat/heat.conf" <<EOF
[DEFAULT]
transport_url = $RABBIT_URL
heat_metadata_server_url = http://$IP:8000
heat_waitcondition_server_url = http://$IP:8000/v1/waitcondition
num_engine_workers = 1
region_name_for_services = RegionOne
# Stack updates load the stack's stored context; with trusts that fails on this Zed build
# ("Authentication cannot be scoped to multiple targets"). Test bed only.
deferred_auth_method = password
[database]
connection = $(dburl heat)
[heat_api]
bind_host = $IP
bind_port = 8004
workers = 1
[paste_deploy]
api_paste_config = $B/etc/heat/api-paste.ini
[clients_keystone]
auth_uri = http://$IP:5000
$(notifications)
[oslo_concurrency]
lock_path = $B/data/lock
$(authtoken heat)
$(ksauth trustee heat)
EOF
  # Cinder: no device-mapper in this kernel, so no LVM; the in-tree fake driver does real API work.
  cp -f "$B/pkgroot/usr/share/cinder-common/api-paste.ini" "$B/etc/cinder/api-paste.ini"
  cp -f "$B/pkgroot/etc/cinder/resource_filters.json" "$B/etc/cinder/" 2>/dev/null || true
  cat > "$B/etc/cinder/cinder.conf" <<EOF
[DEFAULT]
transport_url = $RABBIT_URL
auth_strategy = keystone
host = doppel-osbed
my_ip = $IP
osapi_volume_listen = $IP
osapi_volume_listen_port = 8776
osapi_volume_workers = 1
state_path = $B/data/cinder
api_paste_config = $B/etc/cinder/api-paste.ini
resource_query_filters_file = $B/etc/cinder/resource_filters.json
enabled_backends = fake
default_volume_type = __DEFAULT__
# report the backend to the scheduler within seconds, not minutes
periodic_interval = 10
periodic_fuzzy_delay = 0
[database]
connection = $(dburl cinder)
[oslo_concurrency]
lock_path = $B/data/lock
[oslo_messaging_notifications]
# Off: with Debian 12's cinder 21 + oslo.messaging 14, a notification from cinder-volume fails
# ("read_deleted can only be one of 'no', 'yes' or 'only', not None" in _sanitize_context) and
# takes the volume create down with it. Cinder snapshots complete through polling instead.
driver = noop
[coordination]
backend_url = file://$B/data/cinder
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
volume_group = cinder-volumes
target_helper = fake
$(authtoken cinder)
EOF
  # Swift behind Keystone: a second proxy over the rings and servers of tests/services/swift.sh.
  cat > "$B/etc/swift/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = $IP
bind_port = $SWIFT_KS_PORT
workers = 1
user = swift
swift_dir = /etc/swift
log_name = doppel-swift-keystone-proxy
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats authtoken keystoneauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = http://$IP:5000
auth_url = http://$IP:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = swift
password = $PW
delay_auth_decision = True
memcached_servers = 127.0.0.1:11211
[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
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
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
  [ "$WITH_AODH" = 1 ] && write_telemetry_configs
  return 0
}

write_telemetry_configs() {
  mkdir -p "$B/etc/gnocchi" "$B/etc/aodh" "$B/data/gnocchi"
  # keystonemiddleware in these paste pipelines reads /etc/<project>/<project>.conf unless told otherwise
  sed "s#^oslo_config_project = gnocchi#&\noslo_config_file = $B/etc/gnocchi/gnocchi.conf#" \
    /usr/lib/python3/dist-packages/gnocchi/rest/api-paste.ini > "$B/etc/gnocchi/api-paste.ini"
  sed "s#^oslo_config_project = aodh#&\noslo_config_file = $B/etc/aodh/aodh.conf#" \
    /usr/lib/python3/dist-packages/aodh/api/api-paste.ini > "$B/etc/aodh/api-paste.ini"
  cat > "$B/etc/gnocchi/gnocchi.conf" <<EOF
[DEFAULT]
log_file = $B/log/gnocchi.log
[api]
auth_mode = keystone
paste_config = $B/etc/gnocchi/api-paste.ini
[indexer]
url = $(dburl gnocchi)
[storage]
driver = file
file_basepath = $B/data/gnocchi
[metricd]
workers = 1
metric_processing_delay = 2
$(authtoken gnocchi)
EOF
  cat > "$B/etc/aodh/aodh.conf" <<EOF
[DEFAULT]
transport_url = $RABBIT_URL
evaluation_interval = 10
[api]
paste_config = $B/etc/aodh/api-paste.ini
[database]
connection = $(dburl aodh)
[evaluator]
workers = 1
[notifier]
workers = 1
$(ksauth service_credentials aodh)
interface = public
$(authtoken aodh)
EOF
  cat > "$B/etc/aodh/app.wsgi" <<EOF
from aodh.api import app
application = app.build_wsgi_app(argv=['--config-file', '$B/etc/aodh/aodh.conf', '--log-file', '$B/log/aodh-api.log'])
EOF
}

db_sync() {
  local t0 KM="keystone-manage --config-file $B/etc/keystone/keystone.conf" NM="$PY $B/bin/nova-manage --config-file $B/etc/nova/nova.conf"
  t0=$(date +%s.%N)
  $KM db_sync >> "$B/log/keystone-manage.out" 2>&1
  [ -d "$B/data/keystone/fernet-keys" ] || $KM fernet_setup --keystone-user root --keystone-group root
  [ -d "$B/data/keystone/credential-keys" ] || $KM credential_setup --keystone-user root --keystone-group root
  $KM bootstrap --bootstrap-password "$PW" --bootstrap-username admin --bootstrap-project-name admin \
    --bootstrap-role-name admin --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "http://$IP:5000/v3" --bootstrap-public-url "http://$IP:5000/v3" \
    --bootstrap-internal-url "http://$IP:5000/v3" >> "$B/log/keystone-manage.out" 2>&1
  placement-manage --config-file "$B/etc/placement/placement.conf" db sync >> "$B/log/placement-manage.out" 2>&1
  $PY "$B/bin/glance-manage" --config-file "$B/etc/glance/glance-api.conf" db_sync >> "$B/log/glance-manage.out" 2>&1
  { $NM api_db sync
    $NM cell_v2 map_cell0 --database_connection "$(dburl nova_cell0)"
    $NM cell_v2 list_cells 2>/dev/null | grep -q ' cell1 ' || $NM cell_v2 create_cell --name cell1
    $NM db sync; } >> "$B/log/nova-manage.out" 2>&1
  $PY "$B/bin/neutron-db-manage" --config-file "$B/etc/neutron/neutron.conf" upgrade heads >> "$B/log/neutron-db-manage.out" 2>&1
  $PY "$B/bin/heat-manage" --config-file "$B/etc/heat/heat.conf" db_sync >> "$B/log/heat-manage.out" 2>&1
  $PY "$B/bin/cinder-manage" --config-file "$B/etc/cinder/cinder.conf" db sync >> "$B/log/cinder-manage.out" 2>&1
  if [ "$WITH_AODH" = 1 ]; then
    gnocchi-upgrade --config-file "$B/etc/gnocchi/gnocchi.conf" >> "$B/log/gnocchi-upgrade.out" 2>&1
    $PY "$B/bin/aodh-dbsync" --config-file "$B/etc/aodh/aodh.conf" >> "$B/log/aodh-dbsync.out" 2>&1
  fi
  stamp db_sync_s "$(since "$t0")"
}

keystone_catalog() { # service users, roles, endpoints; idempotent
  $PY - "$IP" "$PW" "$SWIFT_KS_PORT" <<'EOF'
import sys, openstack
ip, pw, swift_port = sys.argv[1:4]
c = openstack.connect(auth_url=f'http://{ip}:5000/v3', username='admin', password=pw, project_name='admin',
                      user_domain_name='Default', project_domain_name='Default', region_name='RegionOne',
                      identity_api_version='3')
idn = c.identity
svc = idn.find_project('service') or idn.create_project(name='service', domain_id='default')
admin = idn.find_role('admin')
for role in ('member', 'reader', 'heat_stack_owner', 'heat_stack_user', 'service'):
    idn.find_role(role) or idn.create_role(name=role)
for name in ('glance', 'placement', 'nova', 'neutron', 'heat', 'cinder', 'swift', 'aodh', 'gnocchi'):
    user = idn.find_user(name, domain_id='default') or idn.create_user(name=name, password=pw, domain_id='default')
    idn.assign_project_role_to_user(svc, user, admin)
    idn.assign_project_role_to_user(svc, user, idn.find_role('service'))
idn.assign_project_role_to_user(idn.find_project('admin'), idn.find_user('admin', domain_id='default'),
                                idn.find_role('heat_stack_owner'))
catalog = [('glance', 'image', f'http://{ip}:9292'), ('placement', 'placement', f'http://{ip}:8778'),
           ('nova', 'compute', f'http://{ip}:8774/v2.1'), ('neutron', 'network', f'http://{ip}:9696'),
           ('heat', 'orchestration', f'http://{ip}:8004/v1/%(tenant_id)s'),
           ('cinderv3', 'volumev3', f'http://{ip}:8776/v3/%(project_id)s'),
           ('cinder', 'block-storage', f'http://{ip}:8776/v3/%(project_id)s'),
           ('swift', 'object-store', f'http://{ip}:{swift_port}/v1/AUTH_%(project_id)s'),
           ('aodh', 'alarming', f'http://{ip}:8042'), ('gnocchi', 'metric', f'http://{ip}:8041')]
for name, kind, url in catalog:
    service = idn.find_service(name) or idn.create_service(name=name, type=kind)
    have = {e.interface for e in idn.endpoints(service_id=service.id)}
    for interface in ('public', 'internal', 'admin'):
        if interface not in have:
            idn.create_endpoint(service_id=service.id, interface=interface, url=url, region_id='RegionOne')
EOF
}

# The second region, the DR project and its user, Designate's service user and endpoints; idempotent.
# RegionTwo's endpoints are RegionOne's URLs: the same processes serve both regions (see the header).
keystone_regions() {
  WITH_DESIGNATE=$WITH_DESIGNATE $PY - "$IP" "$PW" "$REGION2" "$DR_PROJECT" "$DR_USER" <<'EOF'
import os, sys, openstack
ip, pw, region2, dr_project, dr_user = sys.argv[1:6]
c = openstack.connect(auth_url=f'http://{ip}:5000/v3', username='admin', password=pw, project_name='admin',
                      user_domain_name='Default', project_domain_name='Default', region_name='RegionOne',
                      identity_api_version='3')
idn = c.identity
if region2 not in {r.id for r in idn.regions()}:
    idn.create_region(id=region2, description='The DR region of the Doppel test bed (same processes as RegionOne)')
if os.environ.get('WITH_DESIGNATE') == '1':
    svc = idn.find_project('service')
    user = idn.find_user('designate', domain_id='default') or idn.create_user(name='designate', password=pw,
                                                                                domain_id='default')
    idn.assign_project_role_to_user(svc, user, idn.find_role('admin'))
    idn.assign_project_role_to_user(svc, user, idn.find_role('service'))
    designate = idn.find_service('designate') or idn.create_service(name='designate', type='dns')
    have = {e.interface for e in idn.endpoints(service_id=designate.id) if e.region_id == 'RegionOne'}
    for interface in ('public', 'internal', 'admin'):
        if interface not in have:
            idn.create_endpoint(service_id=designate.id, interface=interface, url=f'http://{ip}:9001',
                                region_id='RegionOne')
endpoints = list(idn.endpoints())
in_two = {(e.service_id, e.interface) for e in endpoints if e.region_id == region2}
for e in endpoints:
    if e.region_id == 'RegionOne' and (e.service_id, e.interface) not in in_two:
        idn.create_endpoint(service_id=e.service_id, interface=e.interface, url=e.url, region_id=region2)
project = idn.find_project(dr_project, domain_id='default') or idn.create_project(
    name=dr_project, domain_id='default', description='The DR side of the Doppel test bed')
user = idn.find_user(dr_user, domain_id='default') or idn.create_user(
    name=dr_user, password=pw, domain_id='default', default_project_id=project.id)
for role in ('member', 'heat_stack_owner'):
    idn.assign_project_role_to_user(project, user, idn.find_role(role))
EOF
}

clouds_yaml_text() { cat <<EOF
# Written by tests/services/openstack.sh for the test control plane on loopback. Not for production.
clouds:
  doppel-test:
    auth:
      auth_url: http://$IP:5000/v3
      username: admin
      password: $PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
    interface: public
  # The DR side: its own project and user (member), in the second region. RegionTwo's endpoints are
  # the same processes as RegionOne's; the project is what keeps production's resources out of sight.
  doppel-test-dr:
    auth:
      auth_url: http://$IP:5000/v3
      username: $DR_USER
      password: $PW
      project_name: $DR_PROJECT
      user_domain_name: Default
      project_domain_name: Default
    region_name: $REGION2
    identity_api_version: 3
    interface: public
EOF
}
clouds_yaml_current() { [ "$(clouds_yaml_text)" = "$(cat "$CLOUDS_YAML" 2>/dev/null)" ]; }

write_clouds_yaml() { # only when it changes, and atomically: running tests read it
  clouds_yaml_current && [ -f "$B/clouds.yaml" ] && return
  mkdir -p "$(dirname "$CLOUDS_YAML")"
  ( umask 077; clouds_yaml_text > "$CLOUDS_YAML.new"; mv "$CLOUDS_YAML.new" "$CLOUDS_YAML" )
  cp -f "$CLOUDS_YAML" "$B/clouds.yaml"
}

# ------------------------------------------------------------------ start
start_services() {
  local t0 n
  t0=$(date +%s.%N)
  uwsgi_bg keystone 5000 /usr/bin/keystone-wsgi-public "OS_KEYSTONE_CONFIG_FILES=$B/etc/keystone/keystone.conf"
  wait_http "http://$IP:5000/v3" keystone
  stamp keystone_up_s "$(since "$t0")"
  keystone_catalog
  uwsgi_bg placement 8778 /usr/bin/placement-api "OS_PLACEMENT_CONFIG_DIR=$B/etc/placement"
  bg glance-api $PY "$B/bin/glance-api" --config-file "$B/etc/glance/glance-api.conf"
  bg neutron-server $PY "$B/bin/neutron-server" --config-file "$B/etc/neutron/neutron.conf"
  for n in api conductor scheduler; do
    bg nova-$n $PY "$B/bin/nova-$n" --config-file "$B/etc/nova/nova.conf" --log-file "$B/log/nova-$n.log"
  done
  bg nova-compute $PY "$B/bin/nova-compute" --config-file "$B/etc/nova/nova-compute.conf" --log-file "$B/log/nova-compute.log"
  for n in api engine; do
    bg heat-$n $PY "$B/bin/heat-$n" --config-file "$B/etc/heat/heat.conf" --log-file "$B/log/heat-$n.log"
  done
  for n in api scheduler volume; do
    bg cinder-$n $PY "$B/bin/cinder-$n" --config-file "$B/etc/cinder/cinder.conf" --log-file "$B/log/cinder-$n.log"
  done
  bg swift-keystone-proxy /usr/bin/swift-proxy-server "$B/etc/swift/proxy-server.conf"
  if [ "$WITH_AODH" = 1 ]; then
    bg gnocchi-api /usr/bin/uwsgi --plugin python3 --http-socket "$IP:8041" --wsgi gnocchi.rest.wsgi \
      --pyargv "--config-file $B/etc/gnocchi/gnocchi.conf" --master --processes 1 --threads 4 \
      --enable-threads --lazy-apps --die-on-term --need-app --add-header "Connection: close" --chdir /
    bg gnocchi-metricd /usr/bin/gnocchi-metricd --config-file "$B/etc/gnocchi/gnocchi.conf"
    uwsgi_bg aodh-api 8042 "$B/etc/aodh/app.wsgi"
    for n in evaluator notifier; do
      bg aodh-$n $PY "$B/bin/aodh-$n" --config-file "$B/etc/aodh/aodh.conf" --log-file "$B/log/aodh-$n.log"
    done
  fi
  wait_http "http://$IP:8778/" placement; wait_http "http://$IP:9292/" glance-api
  wait_http "http://$IP:9696/" neutron-server; wait_http "http://$IP:8774/" nova-api
  wait_http "http://$IP:8004/" heat-api; wait_http "http://$IP:8776/" cinder-api
  wait_http "http://$IP:$SWIFT_KS_PORT/healthcheck" swift-keystone-proxy
  if [ "$WITH_AODH" = 1 ]; then wait_http "http://$IP:8041/" gnocchi-api; wait_http "http://$IP:8042/" aodh-api; fi
  map_compute_host
  stamp services_answer_s "$(since "$t0")"
}

map_compute_host() { # the compute service registers itself; then it must be mapped into cell1
  local i
  for i in $(seq 1 90); do
    $PY "$B/bin/nova-manage" --config-file "$B/etc/nova/nova.conf" cell_v2 discover_hosts >/dev/null 2>&1 || true
    mariadb -S "$SOCK" -uroot -N -e "select count(*) from nova_api.host_mappings where host='doppel-osbed'" | grep -qx 1 && return
    sleep 2
  done
  fail "nova-compute never registered; see $B/log/nova-compute.log"
}

health() { # seconds [core]: usable, not just listening: every service registered, a Swift round trip through
  # Keystone; unless "core": the second region, the DR cloud, and Designate (API, mdns, BIND's rndc)
  OS_CLIENT_CONFIG_FILE="$CLOUDS_YAML" PYTHONWARNINGS=ignore WITH_AODH=$WITH_AODH WITH_DESIGNATE=$WITH_DESIGNATE \
    HEALTH_PARTS=${2:-all} REGION2=$REGION2 DR_PROJECT=$DR_PROJECT BIND_SH=$HERE/bind.sh MDNS_PORT=$MDNS_PORT \
    timeout "${1:-300}" $PY - <<'EOF'
import os, subprocess, time, openstack
import logging
logging.getLogger('keystoneauth').setLevel(logging.ERROR)
c = openstack.connect(cloud='doppel-test')
def wait(what, check, seconds=240):
    t0 = time.time()
    while True:
        try:
            if check():
                print(f'  healthy: {what} ({time.time() - t0:.1f}s)', flush=True)
                return
        except Exception as exc:  # still starting
            last = exc
        if time.time() - t0 > seconds:
            raise SystemExit(f'openstack.sh: ERROR: {what} not healthy after {seconds}s')
        time.sleep(1)
up = lambda binary: [s for s in c.compute.services() if s.binary == binary and s.state == 'up']
wait('nova-compute', lambda: up('nova-compute'))
wait('nova-scheduler, nova-conductor', lambda: up('nova-scheduler') and up('nova-conductor'))
wait('placement resource provider', lambda: list(c.placement.resource_providers()))
wait('glance', lambda: list(c.image.images()) is not None)
wait('neutron', lambda: list(c.network.extensions()))
wait('heat-engine', lambda: [s for s in c.session.get('/services', endpoint_filter={'service_type': 'orchestration'}).json()['services'] if s['status'] == 'up'])
wait('cinder backend pool', lambda: list(c.block_storage.backend_pools()))
def swift_round_trip():
    c.object_store.create_container('doppel-health')
    c.object_store.upload_object('doppel-health', 'ping', data=b'pong')
    ok = c.object_store.download_object('ping', container='doppel-health') == b'pong'
    c.object_store.delete_object('ping', container='doppel-health')
    return ok
wait('swift through keystone', swift_round_trip)
if os.environ.get('WITH_AODH') == '1':
    wait('gnocchi', lambda: c.session.get('/v1/archive_policy', endpoint_filter={'service_type': 'metric'}).ok)
    wait('aodh', lambda: c.session.get('/v2/alarms', endpoint_filter={'service_type': 'alarming'}).ok)
if os.environ['HEALTH_PARTS'] == 'all':
    region2, dr_project = os.environ['REGION2'], os.environ['DR_PROJECT']
    wait(region2, lambda: region2 in {r.id for r in c.identity.regions()})
    dr = openstack.connect(cloud='doppel-test-dr')
    wait(f'the DR cloud (project {dr_project}, {region2})',
         lambda: dr.current_project.name == dr_project and list(dr.orchestration.stacks()) is not None)
    if os.environ.get('WITH_DESIGNATE') == '1':
        wait('designate-api', lambda: list(dr.dns.zones()) is not None)
        wait('designate-central', lambda: c.session.get('/v2/pools', endpoint_filter={'service_type': 'dns'}).ok)
        # mdns answers a query for a zone it does not have (REFUSED is an answer); BIND's rndc channel
        wait('designate-mdns', lambda: subprocess.run(
            ['dig', '@127.0.0.1', '-p', os.environ['MDNS_PORT'], '+time=2', '+tries=1', 'doppel-health.invalid.',
             'SOA'], capture_output=True, timeout=10).returncode == 0)
        wait("BIND's rndc channel", lambda: subprocess.run(['bash', os.environ['BIND_SH'], 'rndc', 'status'],
                                                            capture_output=True, timeout=10).returncode == 0)
EOF
}

# ------------------------------------------------------------------ commands
start() {
  mkdir -p "$B/log" "$B/run"
  if all_alive && clouds_yaml_current && { [ "$WITH_DESIGNATE" != 1 ] || designate_current; } \
      && health 60 >/dev/null 2>&1; then
    say "reusing the running control plane (all $(echo $SERVICES | wc -w) services alive and healthy)"
    return
  fi
  local t0
  t0=$(date +%s.%N)
  if core_alive && [ -f "$CLOUDS_YAML" ] && health 60 core >/dev/null 2>&1; then
    # Services other people are using right now: leave them as they are, add what is missing.
    say "the core services are up and healthy; adding what is missing beside them"
  else
    install_packages "$PACKAGES" "$SERVICE_DEBS" install_s
    bash "$HERE/swift.sh" >/dev/null || fail "tests/services/swift.sh could not provide the Swift servers"
    rabbit_setup
    write_configs
    start_mysql
    db_sync
    stamp configure_s "$(since "$t0")"
    write_clouds_yaml
    start_services
    health 300 core
  fi
  extend
  stamp bring_up_total_s "$(since "$t0")"
  say "OpenStack ready; clouds.yaml: $CLOUDS_YAML (clouds doppel-test, doppel-test-dr)"
}

extend() { # the second region, the DR project, Designate; beside running core services
  local t0
  t0=$(date +%s.%N)
  keystone_regions
  write_clouds_yaml
  stamp regions_s "$(since "$t0")"
  if [ "$WITH_DESIGNATE" = 1 ]; then designate_start; fi
  health 300
}

stop_one() {
  local f=$B/run/$1.pid p i
  [ -f "$f" ] || return 0
  alive "$1" || { rm -f "$f"; return 0; }  # a stale file: its number may be a stranger's now
  p=$(cat "$f")
  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$p" 2>/dev/null && kill -KILL -- "-$p" 2>/dev/null || true
  rm -f "$f"
}

stop() { local n; for n in $SERVICES; do stop_one "$n"; done; stop_one mysqld; rm -f "$B/run/mysqld.real.pid"; }

status() {
  local n p pss
  for n in mysqld $SERVICES; do
    if alive "$n"; then
      p=$(cat "$B/run/$n.pid"); pss=0
      for c in $(pgrep -g "$(ps -o pgid= -p "$p" | tr -d ' ')"); do
        pss=$((pss + $(awk '/^Pss:/{print $2}' /proc/$c/smaps_rollup 2>/dev/null || echo 0)))
      done
      printf '%-22s up    pid %-7s PSS %5d MiB\n' "$n" "$p" $((pss / 1024))
    else
      printf '%-22s down\n' "$n"
    fi
  done
}

main() {
  [ "$(id -u)" -eq 0 ] || fail "run as root (installs packages, starts services)"
  mkdir -p "$B/log" "$B/run" "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  flock 9
  case "${1:-start}" in
    start) start ;;
    restart) shift; write_configs; for n in "$@"; do stop_one "$n"; done; start_services; extend ;;
    stop) stop ;;
    status) status ;;
    clean) stop; [ "$WITH_DESIGNATE" = 1 ] && designate_forget_bind_zones; rm -rf "$B/mysql" "$B/data" "$B/etc" "$B/log" "$B/run" "$B/timings.txt" "$CLOUDS_YAML" "$NOVA_TESTBED_DRIVER";
           rabbitmqctl -q delete_vhost openstack 2>/dev/null || true ;;
    *) echo "usage: $0 [start|stop|status|clean|restart NAME...]" >&2; exit 2 ;;
  esac
}
main "$@"
