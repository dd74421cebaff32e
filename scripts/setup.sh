#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Pollen, and nothing
# that is already there: libvirt's development files (for the `virt` crate), the
# libvirt client tools, pkg-config, Rust's wasm32-wasip2 target (for plugins), and a
# RabbitMQ on 127.0.0.1:5672 if none listens (for the publishing tests).
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
# Publishing tests talk to a real RabbitMQ on 127.0.0.1:5672 (guest/guest).
broker_listens() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! broker_listens; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "setup: installing rabbitmq-server"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
    fi
    echo "setup: starting RabbitMQ"
    as_root rabbitmq-server -detached || true
    for _ in $(seq 1 60); do broker_listens && break; sleep 1; done
    broker_listens || { echo "setup: RabbitMQ does not listen on 127.0.0.1:5672" >&2; exit 1; }
fi
echo "setup: ready"
