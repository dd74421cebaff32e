#!/usr/bin/env bash
# Builds the Debian package of Pollen with dpkg-deb: the binary, the built-in plugins
# (compute and central), the systemd units, an example configuration, the docs.
#
#   scripts/deb.sh [--binary PATH] [--out DIR]
#
# `make deb` runs it after a release build and `make plugins`; the tests package the
# binary they were built with (`--binary`). Prints the package's path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
binary="$target/release/pollen"
out="$target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "deb: unknown argument $1 (use --binary PATH, --out DIR)" >&2; exit 2 ;;
  esac
done
for needed in "$binary" "$here/plugins/dist/cpu.wasm" "$here/plugins/dist-central/glance_images.wasm"; do
  [ -e "$needed" ] || { echo "deb: $needed is missing: run \`make release plugins\` first (\`make deb\` does)" >&2; exit 1; }
done
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$binary" "$root/usr/bin/pollen"
install -d "$root/usr/lib/pollen/plugins" "$root/usr/lib/pollen/plugins-central"
install -m 0644 "$here"/plugins/dist/*.wasm "$root/usr/lib/pollen/plugins/"
install -m 0644 "$here"/plugins/dist-central/*.wasm "$root/usr/lib/pollen/plugins-central/"
install -D -m 0644 "$here/packaging/pollen.service" "$root/lib/systemd/system/pollen.service"
install -D -m 0644 "$here/packaging/pollen-collect.service" "$root/lib/systemd/system/pollen-collect.service"
# The shipped pipeline, for a compute host: the system's libvirt, the installed
# plugins, every sample to the local RabbitMQ through a disk queue.
install -d "$root/etc/pollen"
sed -e 's|^  libvirt_uri: test:///default|  libvirt_uri: qemu:///system|' \
    -e 's|^  plugin_dir: plugins/dist|  plugin_dir: /usr/lib/pollen/plugins|' \
    -e 's|^      - stdout://|      - notifier://guest:guest@127.0.0.1:5672/?policy=disk|' \
    "$here/pipeline.yaml" > "$root/etc/pollen/pipeline.yaml"
install -m 0644 "$here/collector.yaml" "$root/etc/pollen/collector.yaml"
chmod 0644 "$root/etc/pollen/pipeline.yaml"
install -d "$root/usr/share/doc/pollen"
install -m 0644 "$here/README.md" "$here"/docs/*.md "$root/usr/share/doc/pollen/"
cat > "$root/usr/share/doc/pollen/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pollen
License: Apache-2.0
COPYRIGHT

install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: pollen
Version: $version
Architecture: $arch
Maintainer: Pollen developers <pollen@localhost>
Depends: libc6 (>= 2.36), libvirt0 (>= 9.0)
Recommends: libvirt-daemon-system
Section: admin
Priority: optional
Installed-Size: $(du -sk "$root" | cut -f1)
Homepage: https://docs.rs/pollen-sdk
Description: telemetry agent for clouds with sandboxed WebAssembly meters
 Pollen does the job of OpenStack Ceilometer's polling agents, pipeline and
 collector: it polls the hypervisor and the OpenStack APIs with meters that are
 WebAssembly components, transforms the samples, and publishes them in
 Ceilometer's wire formats (or stores them).
CONTROL
printf '/etc/pollen/pipeline.yaml\n/etc/pollen/collector.yaml\n' > "$root/DEBIAN/conffiles"

mkdir -p "$out"
package="$out/pollen_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$package" >/dev/null
echo "$package"
