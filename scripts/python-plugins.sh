#!/usr/bin/env bash
# Python plugins: componentize-py from PyPI in a virtualenv of its own, and the
# repository's Python plugins (plugins/python/*: app.py and world.wit) built with it
# against the contract (wit/) and the Python SDK (sdk/python).
#
#   scripts/python-plugins.sh install          install componentize-py if missing (~30 s)
#   scripts/python-plugins.sh build SRC OUT    build the plugin in folder SRC into OUT
#   scripts/python-plugins.sh path             print the componentize-py command
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
repo="$(cd "$(dirname "$0")/.." && pwd)"
state="${POLLEN_PYTHON_DIR:-/var/lib/pollen-python}"
venv="$state/venv"
# The release `pollen plugin new --lang python` names (host/src/scaffold/mod.rs).
version=$(sed -n 's/^pub const COMPONENTIZE_PY_VERSION: &str = "\(.*\)";/\1/p' "$repo/host/src/scaffold/mod.rs")

case "${1:-install}" in
install)
    make_venv "$venv" "$state"
    if [ "$("$venv/bin/pip" show componentize-py 2>/dev/null | sed -n 's/^Version: //p')" != "$version" ]; then
        echo "python-plugins: installing componentize-py==$version from PyPI into $venv"
        as_root "$venv/bin/pip" install -q "componentize-py==$version"
    fi
    ;;
build)
    src=${2:?usage: $0 build SRC OUT} out=${3:?usage: $0 build SRC OUT}
    # The layout `pollen plugin new` writes: the plugin's world, and the contract and
    # WASI under deps/.
    wit=$(mktemp -d)
    trap 'rm -rf "$wit"' EXIT
    mkdir -p "$wit/deps/pollen"
    cp "$src/world.wit" "$wit/world.wit"
    cp "$repo"/wit/*.wit "$wit/deps/pollen/"
    cp -r "$repo"/wit/deps/* "$wit/deps/"
    mkdir -p "$(dirname "$out")"
    "$venv/bin/componentize-py" -d "$wit" -w plugin componentize app -p "$src" -p "$repo/sdk/python" -o "$out"
    ;;
path) echo "$venv/bin/componentize-py" ;;
*)
    echo "usage: $0 install|build SRC OUT|path" >&2
    exit 2
    ;;
esac
