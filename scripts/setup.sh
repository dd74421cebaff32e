#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Pollen, and nothing
# that is already there: libvirt's development files (for the `virt` crate), the
# libvirt client tools, pkg-config, Rust's wasm32-wasip2 target (for plugins), a
# RabbitMQ on 127.0.0.1:5672 and a Prometheus Pushgateway on 127.0.0.1:9091 if none
# listens (for the publishing tests).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

missing=()
pkg-config --exists libvirt 2>/dev/null || missing+=(libvirt-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v virsh >/dev/null 2>&1 || missing+=(libvirt-clients)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# GNU time: the hostile-plugin tests read the agent's own peak memory with it.
[ -x /usr/bin/time ] || missing+=(time)
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
broker_listens() { listens 5672; }
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
# The dynamic pollsters' tests poll RabbitMQ's management API on 127.0.0.1:15672
# (basic auth, guest/guest), bound to loopback before the plugin is enabled.
if ! listens 15672; then
    echo "setup: enabling RabbitMQ's management API on 127.0.0.1:15672"
    as_root rabbitmqctl eval 'application:set_env(rabbitmq_management, tcp_config, [{ip, "127.0.0.1"}, {port, 15672}]).' >/dev/null
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null
    for _ in $(seq 1 60); do listens 15672 && break; sleep 1; done
    listens 15672 || { echo "setup: RabbitMQ's management API does not listen on 127.0.0.1:15672" >&2; exit 1; }
fi
# The Prometheus publisher's tests push to a real Pushgateway on 127.0.0.1:9091.
pushgateway_listens() { listens 9091; }
if ! pushgateway_listens; then
    if ! command -v prometheus-pushgateway >/dev/null 2>&1; then
        echo "setup: installing prometheus-pushgateway"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-pushgateway
    fi
    echo "setup: starting the Pushgateway on 127.0.0.1:9091"
    as_root mkdir -p /var/log/pollen
    nohup prometheus-pushgateway --web.listen-address=127.0.0.1:9091 >/var/log/pollen/pushgateway.log 2>&1 &
    for _ in $(seq 1 30); do pushgateway_listens && break; sleep 0.5; done
    pushgateway_listens || { echo "setup: the Pushgateway does not listen on 127.0.0.1:9091" >&2; exit 1; }
fi
echo "setup: ready"
