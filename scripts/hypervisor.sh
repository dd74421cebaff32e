#!/usr/bin/env bash
# A real hypervisor on this machine, for Pollen's integration tier and benchmarks:
# libvirtd with the QEMU driver (KVM where /dev/kvm exists, plain emulation otherwise),
# which also serves libvirt's test driver over RPC (test+unix:///abs/node.xml).
#
#   scripts/hypervisor.sh start        install what is missing, start virtlogd + libvirtd
#   scripts/hypervisor.sh boot N       boot N domains (64 MiB, no OS, a raw disk, a tap
#                                      vNIC, Nova metadata) named pollen-demo-1..N
#   scripts/hypervisor.sh destroy      destroy the pollen-demo-* domains
#   scripts/hypervisor.sh restart      restart libvirtd (the domains keep running)
#   scripts/hypervisor.sh status       whether qemu:///system answers
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
state_dir="${POLLEN_HV_DIR:-/var/lib/pollen-hv}"
uri="qemu:///system"

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

answers() { virsh -c "$uri" version >/dev/null 2>&1; }

install_missing() {
    local missing=()
    command -v libvirtd >/dev/null 2>&1 || missing+=(libvirt-daemon)
    [ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ] \
        || [ -n "$(find /usr/lib -name 'libvirt_driver_qemu.so' -print -quit 2>/dev/null)" ] \
        || missing+=(libvirt-daemon-driver-qemu)
    command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
    command -v virsh >/dev/null 2>&1 || missing+=(libvirt-clients)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "hypervisor: installing ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

start() {
    install_missing
    # QEMU runs as root here: no libvirt-qemu user needs access to /dev/kvm or the
    # disk images (a test machine, not a production host).
    # Some installs ship no qemu.conf at all (then the daemon's defaults apply).
    local conf=/etc/libvirt/qemu.conf
    if ! grep -qs '^user = "root"' "$conf"; then
        if [ -f "$conf" ]; then
            as_root sed -i 's/^#\?user = .*/user = "root"/; s/^#\?group = .*/group = "root"/' "$conf"
        fi
        grep -qs '^user = "root"' "$conf" || printf 'user = "root"\ngroup = "root"\n' | as_root tee -a "$conf" >/dev/null
        if pgrep -x libvirtd >/dev/null; then as_root pkill -x libvirtd; sleep 1; fi
    fi
    # libvirtd resolves its built-in QEMU user before it reads qemu.conf: it must exist
    # (libvirt-daemon-system creates it; a minimal install may not).
    getent group libvirt-qemu >/dev/null || as_root groupadd --system libvirt-qemu
    getent passwd libvirt-qemu >/dev/null || as_root useradd --system --no-create-home -g libvirt-qemu libvirt-qemu
    as_root mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt/qemu
    pgrep -x virtlogd >/dev/null || as_root virtlogd -d
    pgrep -x libvirtd >/dev/null || as_root libvirtd -d
    for _ in $(seq 1 30); do answers && break; sleep 0.5; done
    answers || { echo "hypervisor: libvirtd does not answer on $uri" >&2; exit 1; }
    echo "hypervisor: libvirtd answers on $uri ($( [ -e /dev/kvm ] && echo KVM || echo QEMU emulation ))"
}

testnode() {
    cargo run -q --manifest-path "$here/Cargo.toml" -p pollen-testkit --bin pollen-testnode -- "$@"
}

boot() {
    local count="${1:?boot N}"
    start
    as_root mkdir -p "$state_dir"
    for i in $(seq 1 "$count"); do
        local xml
        xml="$(mktemp)"
        testnode qemu pollen-demo "$i" "$state_dir" >"$xml"
        if virsh -c "$uri" domstate "pollen-demo-$i" >/dev/null 2>&1; then
            echo "hypervisor: pollen-demo-$i already runs"
        else
            virsh -c "$uri" create "$xml" >/dev/null
            echo "hypervisor: booted pollen-demo-$i"
        fi
        rm -f "$xml"
    done
    echo "hypervisor: try: cargo run -p pollen-host -- poll --once --libvirt-uri $uri"
}

destroy() {
    for name in $(virsh -c "$uri" list --name | grep '^pollen-demo-' || true); do
        virsh -c "$uri" destroy "$name" >/dev/null && echo "hypervisor: destroyed $name"
    done
}

restart() {
    as_root pkill -x libvirtd || true
    for _ in $(seq 1 20); do pgrep -x libvirtd >/dev/null || break; sleep 0.25; done
    as_root libvirtd -d
    for _ in $(seq 1 40); do answers && break; sleep 0.25; done
    answers || { echo "hypervisor: libvirtd does not answer after a restart" >&2; exit 1; }
}

case "${1:-}" in
    start) start ;;
    boot) boot "${2:-3}" ;;
    destroy) destroy ;;
    restart) restart ;;
    status) answers && echo "hypervisor: $uri answers" || { echo "hypervisor: $uri does not answer"; exit 1; } ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
