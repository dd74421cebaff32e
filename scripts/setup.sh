#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Pollen, and nothing
# that is already there: libvirt's development files (for the `virt` crate), the
# libvirt client tools, pkg-config, and Rust's wasm32-wasip2 target (for plugins).
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
pkg-config --exists libvirt 2>/dev/null || missing+=(libvirt-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v virsh >/dev/null 2>&1 || missing+=(libvirt-clients)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing; install Rust 1.95 with rustup first (https://rustup.rs)" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
echo "setup: ready"
