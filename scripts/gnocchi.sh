#!/usr/bin/env bash
# A real Gnocchi on this machine, for the gnocchi:// publisher's tests: the API on
# 127.0.0.1:8041 (basic authentication), PostgreSQL (127.0.0.1:5432) as its indexer
# and files as its storage. Installed from PyPI into a virtualenv.
#
#   scripts/gnocchi.sh start    install what is missing, create the database, start the API
#   scripts/gnocchi.sh stop     stop the API
#   scripts/gnocchi.sh status   whether the API answers
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
state="${POLLEN_GNOCCHI_DIR:-/var/lib/pollen-gnocchi}"
port=8041
venv="$state/venv"

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
answers() { curl -fsS -u admin: "http://127.0.0.1:$port/v1/archive_policy" >/dev/null 2>&1; }

install() {
    if ! listens 5432; then
        command -v pg_ctlcluster >/dev/null 2>&1 || {
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
        }
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
        for _ in $(seq 1 30); do listens 5432 && break; sleep 0.5; done
    fi
    make_venv "$venv" "$state"
    if ! "$venv/bin/python" -c "import gnocchi, oslo_db, psycopg2, werkzeug" 2>/dev/null; then
        echo "gnocchi: installing Gnocchi from PyPI into $venv"
        # Gnocchi's `postgresql` extra, with psycopg2's binary wheel (no compiler or
        # libpq headers needed).
        as_root "$venv/bin/pip" install -q "gnocchi==4.7.1" "oslo.db==18.1.1" "SQLAlchemy==2.1.9" \
            "SQLAlchemy-Utils==0.43.0" "alembic==1.20.1" "psycopg2-binary" "Werkzeug==3.1.9"
    fi
}

configure() {
    as_root mkdir -p "$state/data"
    cat <<CONF | as_root tee "$state/gnocchi.conf" >/dev/null
[DEFAULT]
debug = false
log_file = $state/gnocchi.log
[api]
auth_mode = basic
[indexer]
url = postgresql://postgres@127.0.0.1:5432/gnocchi
[storage]
driver = file
file_basepath = $state/data
CONF
    if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = 'gnocchi'" | grep -q 1; then
        psql -h 127.0.0.1 -U postgres -qc "create database gnocchi"
    fi
    as_root "$venv/bin/gnocchi-upgrade" --config-file "$state/gnocchi.conf" >"$state/upgrade.log" 2>&1 \
        || { echo "gnocchi: gnocchi-upgrade failed:" >&2; tail -5 "$state/upgrade.log" >&2; exit 1; }
}

start() {
    if answers; then
        echo "gnocchi: the API answers on 127.0.0.1:$port"
        return
    fi
    install
    configure
    as_root sh -c "nohup '$venv/bin/python' '$here/gnocchi_api.py' '$state/gnocchi.conf' $port >'$state/api.log' 2>&1 &"
    for _ in $(seq 1 60); do answers && break; sleep 0.5; done
    answers || { echo "gnocchi: the API does not answer on 127.0.0.1:$port (see $state/api.log)" >&2; exit 1; }
    echo "gnocchi: the API answers on 127.0.0.1:$port"
}

stop() {
    as_root pkill -f "gnocchi_api.py" || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if answers; then echo "gnocchi: answers"; else echo "gnocchi: not running"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
