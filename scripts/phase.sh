#!/usr/bin/env bash
# Runs one phase of a make target and says how long it took:
#   scripts/phase.sh NAME COMMAND [ARGS...]
# prints `phase NAME: 12.3 s` (or `phase NAME: failed after 12.3 s`) on stderr.
set -uo pipefail
name=$1
shift
started=$(date +%s%N)
"$@"
status=$?
elapsed=$(( ($(date +%s%N) - started) / 100000000 ))
if [ "$status" -eq 0 ]; then
    printf 'phase %s: %d.%d s\n' "$name" $((elapsed / 10)) $((elapsed % 10)) >&2
else
    printf 'phase %s: failed after %d.%d s\n' "$name" $((elapsed / 10)) $((elapsed % 10)) >&2
fi
exit "$status"
