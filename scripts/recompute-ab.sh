#!/usr/bin/env bash
# Step time under a memory budget as an interleaved A/B ratio (issue 17):
# the same binary plain (A) and with --memory-budget (B), alternating round
# by round through scripts/bench-ab.sh, so a slow phase of the machine hits
# both sides. The budget is a fraction of the workload's plain arena, or
# "smallest" (the smallest arena the recompute pass reaches, from its error).
# Usage: scripts/recompute-ab.sh [MNEMO] [WORKLOAD] [A/B|smallest] [THREADS] [ROUNDS] [SECONDS]
#   A/B: a fraction of whole numbers, e.g. 1/4
set -euo pipefail
cd "$(dirname "$0")/.."
mnemo=$(realpath "${1:-build/mnemo}")
w=${2:-lstm}
frac=${3:-smallest}
threads=${4:-2}
rounds=${5:-3}
secs=${6:-2}
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }
arena=$("$mnemo" bench --compile --json --threads "$threads" --workload "$w" 2>/dev/null | field arena_bytes)
if [ "$frac" = smallest ]; then
  budget=$("$mnemo" bench --threads "$threads" --budget 0.1 --workload "$w" --memory-budget 1 2>&1 |
           sed -n 's/.*the smallest arena recomputation reaches is \([0-9]*\) bytes.*/\1/p' | head -1 || true)
elif [[ $frac =~ ^[0-9]+/[1-9][0-9]*$ ]]; then
  budget=$((arena * ${frac%/*} / ${frac#*/}))
else
  echo "recompute-ab.sh: the budget is A/B (e.g. 1/4) or smallest, not \"$frac\"" >&2; exit 2
fi
[ -n "$budget" ] || { echo "recompute-ab.sh: $w: no smallest budget in mnemo bench's message" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexec "%s" "$@" --memory-budget %s\n' "$mnemo" "$budget" > "$tmp/budgeted"
chmod +x "$tmp/budgeted"
echo "$w: plain arena $arena bytes, budget $budget bytes ($(python3 -c "print(f'{$budget/$arena:.2f}')") of it); load average $(cut -d' ' -f1-3 /proc/loadavg)"
scripts/bench-ab.sh "$mnemo" "$tmp/budgeted" "$threads" "$rounds" "$w" "$secs" | sed 's/old ms/plain ms/; s/new ms/budgeted ms/; s|new / old|budgeted / plain|'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
