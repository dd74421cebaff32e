#!/usr/bin/env bash
# Installs the peers `make bench` measures Pollen against, if missing: collectd's
# virt plugin (Debian's collectd-core). The bench runs collectd itself, in the
# foreground; the system service the package may enable is stopped.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
if [ ! -x /usr/sbin/collectd ] || [ ! -e /usr/lib/collectd/virt.so ]; then
    echo "bench-peers: installing collectd-core"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends collectd-core
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now collectd.service 2>/dev/null || true
    fi
fi
