#!/usr/bin/env bash
# cycle-cpu.sh POLLEN CONFIG [SECONDS]: CPU seconds per cycle and peak RSS of one
# `pollen run` binary on CONFIG, for comparing two builds run by turns (the e2e bench
# measures only the binary it was built with). Waits for the first `cycle done` line,
# then reads /proc/<pid>/stat (user + system, all threads) over SECONDS (default 30)
# and divides by the cycles logged meanwhile; prints the per-thread-name share too.
set -euo pipefail
pollen=${1:?usage: cycle-cpu.sh POLLEN CONFIG [SECONDS]}
config=${2:?usage: cycle-cpu.sh POLLEN CONFIG [SECONDS]}
seconds=${3:-30}
log=$(mktemp)
"$pollen" run --config "$config" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
until grep -q "cycle done" "$log"; do
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
done
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
threads() { for t in /proc/$pid/task/*; do echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
    awk '{sum[$1] += $2} END {for (name in sum) print name, sum[name]}' | sort; }
before=$(ticks); cycles_before=$(grep -c "cycle done" "$log"); threads >"$log.t0"
sleep "$seconds"
after=$(ticks); cycles=$(( $(grep -c "cycle done" "$log") - cycles_before )); threads >"$log.t1"
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
hz=$(getconf CLK_TCK)
[ "$cycles" -gt 0 ] || { echo "no cycle finished in ${seconds}s" >&2; exit 1; }
awk -v t=$((after - before)) -v c="$cycles" -v hz="$hz" -v p="$peak" \
    'BEGIN {printf "%d cycles  %.3f CPU s/cycle  peak RSS %.1f MiB\n", c, t / hz / c, p / 1024}'
join -a2 -e0 -o 0,1.2,2.2 "$log.t0" "$log.t1" |
    awk -v c="$cycles" -v hz="$hz" '$3 > $2 {printf "  thread %-16s %.3f CPU s/cycle\n", $1, ($3 - $2) / hz / c}'
rm -f "$log.t0" "$log.t1"
