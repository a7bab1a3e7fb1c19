#!/usr/bin/env bash
# Validation BLEU and loss against training steps for candidate defaults of
# `mnemo train --model translate` (issue 19: the default should give the
# best result in about 10 quiet minutes on 2 cores). Each candidate trains
# STEPS steps (no time limit), validating every EVERY steps (greedy BLEU on
# the first 100 validation pairs, validation loss on all), THREADS threads
# (default 1); PARALLEL=1 runs the candidates at the same time (a loaded
# machine), otherwise one after the other. Prints a table of validation
# BLEU / loss per step for each candidate and its CPU milliseconds per
# training step (the "training:" line), from which steps per quiet minute
# on 2 cores follow. Candidates: A the default; B warmup 200, lr 3e-3;
# C a BPE of 2,000 ids; L --arch lstm-attn (its own figure).
# Usage: scripts/mt-bleu-steps.sh [STEPS (600)] [EVERY (100)] [OUT_DIR] [CANDIDATES (A B C L)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
[ -x "$build/mnemo" ] || "$root/scripts/build.sh" > /dev/null   # a clean clone
steps=${1:-600}
every=${2:-100}
out=${3:-/tmp/mnemo-mt-bleu}
cands=${4:-A B C L}
threads=${THREADS:-1}
mkdir -p "$out"
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel
[ -f "$data/kjv.imp" ] && [ -f "$data/rv1909.imp" ] || "$root/scripts/make-parallel.sh" "$data"
flags() {
  case $1 in
    A) echo "" ;;
    B) echo "--warmup 200 --lr 3e-3" ;;
    C) echo "--vocab 2000" ;;
    L) echo "--arch lstm-attn" ;;
    *) echo "mt-bleu-steps.sh: unknown candidate $1" >&2; exit 2 ;;
  esac
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $threads thread(s); load $(cut -d' ' -f1-3 /proc/loadavg)"
pids=()
for c in $cands; do
  # shellcheck disable=SC2046
  cmd=("$build/mnemo" train --model translate --steps "$steps" --time 0 --val-every "$every" --val-bleu 100 --threads "$threads"
       --out "$out/$c.st" --force $(flags "$c"))
  echo "$c: ${cmd[*]:1}"
  if [ "${PARALLEL:-0}" = 1 ]; then "${cmd[@]}" > "$out/$c.log" 2>&1 & pids+=($!); else "${cmd[@]}" > "$out/$c.log" 2>&1; fi
done
for p in "${pids[@]}"; do wait "$p"; done
/usr/bin/python3 - "$out" $cands <<'PY'
import json, re, sys
out, cands = sys.argv[1], sys.argv[2:]
rows, cpu = {}, {}
for c in cands:
    for l in open(f"{out}/{c}.st.metrics.jsonl"):
        m = json.loads(l)
        rows.setdefault(m["step"], {})[c] = m
    t = re.search(r"^training: .*\(([0-9.]+) CPU ms/step", open(f"{out}/{c}.log").read(), re.M)
    cpu[c] = float(t.group(1)) if t else float("nan")
print("| step | " + " | ".join(f"{c} BLEU / val loss" for c in cands) + " |")
print("|---:|" + "---:|" * len(cands))
for s in sorted(rows):
    print(f"| {s} | " + " | ".join(f"{rows[s][c]['val_bleu']:.2f} / {rows[s][c]['val_loss']:.3f}" if c in rows[s] else "" for c in cands) + " |")
print("| CPU ms/step | " + " | ".join(f"{cpu[c]:.0f}" for c in cands) + " |")
PY
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
