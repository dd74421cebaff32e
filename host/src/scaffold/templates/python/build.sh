#!/bin/sh
# Builds {{name}}.wasm, a component of the world in wit/world.wit, with componentize-py
# (`pip install componentize-py=={{componentize_py}}`, or name it in $COMPONENTIZE_PY).
set -eu
cd "$(dirname "$0")"
"${COMPONENTIZE_PY:-componentize-py}" -d wit -w plugin componentize app -p . -o {{name}}.wasm
echo "built {{name}}.wasm"
