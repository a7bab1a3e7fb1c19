#!/usr/bin/env bash
# Step time under a memory budget, plain and budgeted steps alternating in
# one process (`mnemo bench --against-plain`, issue 17), repeated in several
# processes: each process's ratio of medians and median per-pair ratio, then
# the median of the processes' ratios. The budget is a fraction of the
# workload's plain arena, as in scripts/recompute-ab.sh.
# Usage: scripts/recompute-pairs.sh [MNEMO] [WORKLOAD] [A/B] [THREADS] [PROCESSES] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
mnemo=$(realpath "${1:-build/mnemo}")
w=${2:-lstm}
frac=${3:-1/4}
threads=${4:-2}
procs=${5:-3}
secs=${6:-20}
[[ $frac =~ ^[0-9]+/[1-9][0-9]*$ ]] || { echo "recompute-pairs.sh: the budget is A/B (e.g. 1/4), not \"$frac\"" >&2; exit 2; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }
arena=$("$mnemo" bench --compile --json --threads "$threads" --workload "$w" 2>/dev/null | field arena_bytes)
budget=$((arena * ${frac%/*} / ${frac#*/}))
echo "$w: plain arena $arena bytes, budget $budget bytes ($frac), $threads threads, $procs processes of ~$secs s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for p in $(seq "$procs"); do
  line=$("$mnemo" bench --workload "$w" --threads "$threads" --budget "$secs" --memory-budget "$budget" --against-plain --json) ||
    { echo "recompute-pairs.sh: mnemo bench failed (above)" >&2; exit 1; }
  echo "$line" >> "$out"
  echo "$line" | python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(f\"  process $p: plain {r['plain_ms_median']:.1f} ms, budgeted {r['budgeted_ms_median']:.1f} ms, ratio {r['ratio_of_medians']:.3f} (pairs: median {r['pair_ratio_median']:.3f}, {r['pair_ratio_min']:.3f}-{r['pair_ratio_max']:.3f}, n={r['pairs']})\")"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"median over processes: ratio of medians {statistics.median(r['ratio_of_medians'] for r in rs):.3f}, "
      f"pair-ratio median {statistics.median(r['pair_ratio_median'] for r in rs):.3f}; "
      f"added FLOPs {rs[0]['recompute_added_flops']:.4g}, budgeted arena {rs[0]['budgeted_arena_bytes']}")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
