#!/usr/bin/env bash
# Ceilometer 27 from PyPI in a virtualenv of its own, for the collector's tests and
# benchmark: the real `ceilometer-agent-notification` publishes to `metering.sample`
# what Pollen's collector must store, and consumes, in the bench, what the collector
# consumes (the component that does the collector's job in Ceilometer today); and
# python-ceilometerclient 2.9.0, the `ceilometer` command the read API's tests run
# against Pollen's API.
#
#   scripts/ceilometer.sh install    install it if missing (about 2 minutes)
#   scripts/ceilometer.sh path       print the folder of its commands
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
state="${POLLEN_CEILOMETER_DIR:-/var/lib/pollen-ceilometer}"
venv="$state/venv"
version=27.0.0
client=2.9.0

case "${1:-install}" in
install)
    make_venv "$venv" "$state"
    if ! "$venv/bin/python" -c "import ceilometer" 2>/dev/null \
        || [ "$("$venv/bin/pip" show ceilometer 2>/dev/null | sed -n 's/^Version: //p')" != "$version" ]; then
        echo "ceilometer: installing ceilometer==$version from PyPI into $venv (about 2 minutes)"
        as_root "$venv/bin/pip" install -q "ceilometer==$version"
    fi
    if [ "$("$venv/bin/pip" show python-ceilometerclient 2>/dev/null | sed -n 's/^Version: //p')" != "$client" ]; then
        echo "ceilometer: installing python-ceilometerclient==$client into $venv"
        as_root "$venv/bin/pip" install -q "python-ceilometerclient==$client"
    fi
    ;;
path) echo "$venv/bin" ;;
*)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
