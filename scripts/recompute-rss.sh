#!/usr/bin/env bash
# Peak memory of training against the plan's prediction (issue 17). For
# each workload, without a budget and at the smallest budget the recompute
# pass reaches (the error of --memory-budget 1 names it): `mnemo bench
# --json` trains (forward, backward, Adam) and reports the process's
# resident data bytes once the workload's graph and weights are built
# (anon_base_bytes) and their peak once the training runs are done
# (train_peak_anon_bytes), before the forward-only runs. Data is the
# anonymous pages: the resident peak less the file-backed pages (the
# libraries' code) and less the anonymous executable pages (code generated
# at run time: oneDNN's JIT kernels, code_anon_bytes, 3.4 MB once its sgemm
# has run, 0.2 MB for its matmul primitive's). On oneDNN's path the
# products on its matmul primitive have their scratchpad planned in the
# arena (ops/dnnl_mm.c), so arena_bytes and the prediction hold it. Predicted (predicted_train_anon_bytes): that base + the
# training executable's predicted_peak_bytes (arena, inputs, its own
# tables, the store's values and gradients) - the store's values and
# gradients already resident (the store zeroes a gradient when it creates
# it) + the forward executable's tables + Adam's two moments and the
# gradient backup (3 x 4 x params). Agrees when |measured - predicted| <=
# 10% of (arena + store), the store being 5 copies of the weights (values,
# gradients, 2 moments, backup). The last columns: the generated code left
# out, and the free bytes glibc's heap keeps after training
# (heap_free_bytes: holes of freed blocks, counted in the measured data).
# Usage: scripts/recompute-rss.sh [MNEMO] [THREADS] [SECONDS] [WORKLOADS]
set -uo pipefail
mnemo=${1:-build/mnemo}
threads=${2:-2}
secs=${3:-1}
only=${4:-lstm_long,transformer}
py=/usr/bin/python3
echo "# peak resident data (anonymous) bytes of training against the prediction"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-12s %-10s %12s %12s %12s %12s %8s %-8s %10s %10s\n" workload budget arena predicted measured tolerance "diff%" verdict code heap_free
status=0
for w in ${only//,/ }; do
  small=$("$mnemo" bench --json --threads "$threads" --budget 0.01 --workload "$w" --memory-budget 1 2>&1 | grep -o 'reaches is [0-9]*' | grep -o '[0-9]*$')
  [ -z "$small" ] && echo "$w: no smallest budget named (bench --memory-budget 1)"
  for b in 0 ${small:+"$small"}; do
    line=$("$mnemo" bench --json --threads "$threads" --budget "$secs" --workload "$w" ${b:+--memory-budget "$b"} 2>&1 | grep '^{')
    [ -z "$line" ] && { echo "$w budget $b: bench failed"; status=1; continue; }
    out=$($py - "$line" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
store = 5 * 4 * d["params"]
pred = d["predicted_train_anon_bytes"]
meas = d["train_peak_anon_bytes"]
tol = 0.1 * (d["arena_bytes"] + store)
ok = abs(meas - pred) <= tol
print(d["arena_bytes"], int(pred), meas, int(tol), "%.1f" % (100.0 * (meas - pred) / (d["arena_bytes"] + store)), "agrees" if ok else "DIFFERS",
      d["code_anon_bytes"], d["heap_free_bytes"], "step %.0f ms" % d["train_ms_median"])
PY
)
    printf "%-12s %-10s %s\n" "$w" "$([ "$b" = 0 ] && echo none || echo "$b")" "$out"
    grep -q DIFFERS <<<"$out" && status=1
  done
done
exit $status
