#!/usr/bin/env bash
# Real OpenStack services on this machine, for the central agent's tests and
# benchmarks: Keystone (127.0.0.1:5000), Glance (127.0.0.1:9292) and Cinder (its API on
# 127.0.0.1:8776, its scheduler, a volume service with Cinder's fake driver, so that
# volumes become `available`, and a backup service writing to a folder — though its
# backups of the fake driver's volumes fail here: it reads them through `sudo
# cinder-rootwrap`), from PyPI in one virtualenv, each with its own database on the
# local PostgreSQL (SQLite locks under concurrent requests), Cinder's RPC on a RabbitMQ
# vhost of its own, Keystone's catalog listing them in region RegionOne.
#
#   scripts/openstack.sh start    install what is missing, configure, start the three
#   scripts/openstack.sh stop     stop them
#   scripts/openstack.sh status   whether each answers
#   scripts/openstack.sh env      the OS_* variables of the admin account (eval it)
#   scripts/openstack.sh images N at least N benchmark images (`pollen-bench-*`, active,
#                                 public) in Glance, written straight into its database
#                                 (the API would take minutes); Glance serves them as any
#                                 other through its API
#
# The admin account is admin / pollen-admin in project admin (domain Default); the
# central agent's own account is ceilometer / pollen-ceilometer in project service,
# with the admin role (as Ceilometer's is, to list every project's resources).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
state="${POLLEN_OPENSTACK_DIR:-/var/lib/pollen-openstack}"
venv="$state/venv"
bin="$venv/bin"
host=127.0.0.1
keystone_port=5000
glance_port=9292
cinder_port=8776
admin_password=pollen-admin
service_password=pollen-ceilometer

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
answers() { curl -fsS -o /dev/null "$1" 2>/dev/null; }
# Creates database $1 on the local PostgreSQL if it is missing; says whether it did.
new_database() {
    if psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = '$1'" | grep -q 1; then
        return 1
    fi
    psql -h 127.0.0.1 -U postgres -qc "create database $1"
}
database_url() { echo "postgresql+psycopg2://postgres@127.0.0.1:5432/$1"; }
keystone_answers() { answers "http://$host:$keystone_port/v3"; }
glance_answers() { curl -sS -o /dev/null -w '%{http_code}' "http://$host:$glance_port/v2/images" 2>/dev/null | grep -q 401; }
cinder_answers() { answers "http://$host:$cinder_port/"; }
wait_for() {
    local what=$1 check=$2 log=$3
    for _ in $(seq 1 240); do "$check" && return 0; sleep 0.5; done
    echo "openstack: $what does not answer (see $log):" >&2
    tail -20 "$log" >&2
    exit 1
}

install() {
    make_venv "$venv" "$state"
    # Cinder's fake volume driver lives in its tests package, which imports `fixtures`
    # (a test dependency, not one of Cinder's).
    if ! "$bin/python" -c "import keystone, glance, cinder, gunicorn, psycopg2, fixtures" 2>/dev/null; then
        echo "openstack: installing Keystone, Glance and Cinder from PyPI into $venv (a few minutes)"
        as_root "$bin/pip" install -q "keystone==30.0.0" "glance==33.0.0" "cinder==29.0.0" gunicorn psycopg2-binary fixtures
    fi
    # Cinder's backup service runs its helpers through sudo (privsep, cinder-rootwrap):
    # without it a backup's RPC fails and the backup stays `creating` for ever.
    if ! command -v sudo >/dev/null 2>&1; then
        echo "openstack: installing sudo (Cinder's backup service calls it)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo
    fi
    if ! listens 5432; then
        echo "openstack: PostgreSQL does not listen on 127.0.0.1:5432 (see the machine's rust-svc.md)" >&2
        exit 1
    fi
}

configure_keystone() {
    local dir="$state/keystone"
    as_root mkdir -p "$dir/fernet-keys" "$dir/credential-keys" "$dir/receipt-keys"
    cat <<CONF | as_root tee "$dir/keystone.conf" >/dev/null
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = $(database_url pollen_keystone)
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/receipt-keys
[credential]
key_repository = $dir/credential-keys
CONF
    local manage=("$bin/keystone-manage" --config-file "$dir/keystone.conf")
    if [ ! -f "$dir/fernet-keys/0" ]; then
        "${manage[@]}" fernet_setup --keystone-user root --keystone-group root >>"$dir/manage.log" 2>&1
        "${manage[@]}" credential_setup --keystone-user root --keystone-group root >>"$dir/manage.log" 2>&1
    fi
    new_database pollen_keystone || return 0
    {
    "${manage[@]}" db_sync
    "${manage[@]}" bootstrap --bootstrap-password "$admin_password" \
        --bootstrap-admin-url "http://$host:$keystone_port/v3" \
        --bootstrap-internal-url "http://$host:$keystone_port/v3" \
        --bootstrap-public-url "http://$host:$keystone_port/v3" \
        --bootstrap-region-id RegionOne
    } >"$dir/manage.log" 2>&1 || { echo "openstack: keystone-manage failed:" >&2; tail -5 "$dir/manage.log" >&2; exit 1; }
}

start_keystone() {
    keystone_answers && return
    local dir="$state/keystone"
    as_root sh -c "cd '$here' && OS_KEYSTONE_CONFIG_FILES='$dir/keystone.conf' nohup '$bin/gunicorn' --no-control-socket \
        -w 2 -b $host:$keystone_port openstack_keystone_wsgi:application >'$dir/gunicorn.log' 2>&1 &"
    wait_for Keystone keystone_answers "$dir/gunicorn.log"
}

# Users, the service project, the services and their endpoints, once.
register() {
    eval "$(admin_env)"
    local openstack=("$bin/python" "$here/openstack_register.py")
    "${openstack[@]}" "$service_password" "$host" "$glance_port" "$cinder_port" 2>"$state/register.log" \
        || { echo "openstack: registering in Keystone failed:" >&2; tail -5 "$state/register.log" >&2; exit 1; }
}

# The [keystone_authtoken] section of a service that checks tokens with Keystone.
keystone_authtoken() {
    cat <<CONF
[keystone_authtoken]
www_authenticate_uri = http://$host:$keystone_port
auth_url = http://$host:$keystone_port
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = ceilometer
password = $service_password
CONF
}

configure_glance() {
    local dir="$state/glance"
    as_root mkdir -p "$dir/images" "$dir/staging" "$dir/tasks"
    as_root cp "$venv/etc/glance/glance-api-paste.ini" "$dir/glance-api-paste.ini"
    cat <<CONF | as_root tee "$dir/glance-api.conf" >/dev/null
[DEFAULT]
log_file = $dir/glance.log
enabled_backends = fs:file
enabled_import_methods = [glance-direct,web-download]
[database]
connection = $(database_url pollen_glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $dir/images
[os_glance_staging_store]
filesystem_store_datadir = $dir/staging
[os_glance_tasks_store]
filesystem_store_datadir = $dir/tasks
[paste_deploy]
flavor = keystone
config_file = $dir/glance-api-paste.ini
$(keystone_authtoken)
CONF
    if new_database pollen_glance; then
        "$bin/glance-manage" --config-dir "$dir" db_sync >"$dir/db_sync.log" 2>&1 \
            || { echo "openstack: glance-manage db_sync failed:" >&2; tail -5 "$dir/db_sync.log" >&2; exit 1; }
    fi
}

start_glance() {
    glance_answers && return
    local dir="$state/glance"
    as_root sh -c "OS_GLANCE_CONFIG_DIR='$dir' nohup '$bin/gunicorn' --no-control-socket -w 2 -b $host:$glance_port \
        glance.wsgi.api:application >'$dir/gunicorn.log' 2>&1 &"
    wait_for Glance glance_answers "$dir/gunicorn.log"
}

configure_cinder() {
    local dir="$state/cinder"
    as_root mkdir -p "$dir/lock" "$dir/backups"
    if ! as_root rabbitmqctl list_vhosts 2>/dev/null | grep -qx pollen_cinder; then
        as_root rabbitmqctl add_vhost pollen_cinder >/dev/null
        as_root rabbitmqctl set_permissions -p pollen_cinder guest '.*' '.*' '.*' >/dev/null
    fi
    cat <<CONF | as_root tee "$dir/cinder.conf" >/dev/null
[DEFAULT]
log_dir = $dir
auth_strategy = keystone
transport_url = rabbit://guest:guest@127.0.0.1:5672/pollen_cinder
enabled_backends = fake
backup_driver = cinder.backup.drivers.posix.PosixBackupDriver
backup_posix_path = $dir/backups
osapi_volume_listen = $host
osapi_volume_listen_port = $cinder_port
osapi_volume_workers = 1
api_paste_config = $venv/etc/cinder/api-paste.ini
resource_query_filters_file = $venv/etc/cinder/resource_filters.json
state_path = $dir
[database]
connection = $(database_url pollen_cinder)
[oslo_concurrency]
lock_path = $dir/lock
# The services run as root: their privileged helpers need no sudo or rootwrap.
[privsep_osbrick]
helper_command = $bin/privsep-helper --config-file $dir/cinder.conf
[cinder_sys_admin]
helper_command = $bin/privsep-helper --config-file $dir/cinder.conf
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
$(keystone_authtoken)
CONF
    if new_database pollen_cinder; then
        "$bin/cinder-manage" --config-file "$dir/cinder.conf" db sync >"$dir/db_sync.log" 2>&1 \
            || { echo "openstack: cinder-manage db sync failed:" >&2; tail -5 "$dir/db_sync.log" >&2; exit 1; }
    fi
}

start_cinder() {
    local dir="$state/cinder"
    for service in scheduler volume backup; do
        pgrep -f "$bin/cinder-$service" >/dev/null && continue
        as_root sh -c "nohup '$bin/cinder-$service' --config-file '$dir/cinder.conf' >'$dir/$service.out' 2>&1 &"
    done
    cinder_answers || {
        as_root sh -c "nohup '$bin/cinder-api' --config-file '$dir/cinder.conf' >'$dir/api.out' 2>&1 &"
        wait_for Cinder cinder_answers "$dir/api.out"
    }
    wait_for "Cinder's volume service" cinder_volume_up "$dir/volume.out"
}

# Whether Cinder's volume service has reported itself up.
cinder_volume_up() {
    psql -h 127.0.0.1 -U postgres -d pollen_cinder -tAc \
        "select count(*) from services where topic = 'cinder-volume' and not disabled and updated_at > now() at time zone 'utc' - interval '60 seconds'" \
        2>/dev/null | grep -qv '^0$'
}

admin_env() {
    cat <<ENV
export OS_AUTH_URL=http://$host:$keystone_port/v3
export OS_USERNAME=admin
export OS_PASSWORD=$admin_password
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
ENV
}

start() {
    install
    configure_keystone
    start_keystone
    register
    configure_glance
    start_glance
    configure_cinder
    start_cinder
    echo "openstack: Keystone http://$host:$keystone_port/v3, Glance http://$host:$glance_port, Cinder http://$host:$cinder_port"
}

stop() {
    as_root pkill -f "openstack_keystone_wsgi:application" || true
    as_root pkill -f "glance.wsgi.api:application" || true
    for service in api scheduler volume backup; do
        as_root pkill -f "$bin/cinder-$service" || true
    done
}

status() {
    local down=0
    for service in keystone glance cinder; do
        if "${service}_answers"; then echo "openstack: $service answers"; else echo "openstack: $service is not running"; down=1; fi
    done
    return $down
}

# At least $1 images named pollen-bench-NNNNNN, owned by the service project.
bench_images() {
    local count=$1
    local owner
    owner=$(psql -h 127.0.0.1 -U postgres -d pollen_keystone -tAc "select id from project where name = 'service'")
    [ -n "$owner" ] || { echo "openstack: no service project (run \`$0 start\` first)" >&2; exit 1; }
    psql -h 127.0.0.1 -U postgres -d pollen_glance -qc "
        insert into images (id, name, size, status, created_at, updated_at, deleted, disk_format, container_format,
                            checksum, owner, min_disk, min_ram, protected, virtual_size, visibility, os_hidden)
        select substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' || substr(h, 18, 3) || '-' || substr(h, 21, 12),
               'pollen-bench-' || lpad(i::text, 6, '0'), i * 1024, 'active', now(), now(), false, 'raw', 'bare',
               substr(h, 1, 32), '$owner', 0, 0, false, i * 1024, 'public', false
        from (select i, md5('pollen-bench-' || i) as h from generate_series(1, $count) as i) as made
        on conflict (id) do nothing"
    echo "openstack: Glance holds $(psql -h 127.0.0.1 -U postgres -d pollen_glance -tAc "select count(*) from images where name like 'pollen-bench-%' and not deleted") benchmark images"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) admin_env ;;
    images) bench_images "${2:?how many images?}" ;;
    *) echo "usage: $0 start|stop|status|env|images N" >&2; exit 2 ;;
esac
