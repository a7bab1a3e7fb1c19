#!/usr/bin/env bash
# Peak memory of a training run against the plan's prediction (issue 17),
# on the path whose products run on oneDNN's sgemm (OpenBLAS's AVX2 kernels
# picked by OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU built with oneDNN):
# the lstm workload's measured peak, without a budget and at the smallest
# one the recompute pass reaches, of resident data (`mnemo bench --json`,
# train_peak_anon_bytes) agrees with predicted_train_anon_bytes within 10%
# of the arena plus the store (5 copies of the weights), and oneDNN's
# generated code (code_anon_bytes, about 3.4 MB) is reported beside it and
# is not counted as data: counted, the lstm misses by 12-18%.
# Elsewhere (OpenBLAS computes the products) only the agreement is checked.
set -u
mnemo=$(readlink -f "$1")
export OPENBLAS_CORETYPE=Haswell
unset MALLOC_PERTURB_     # meson's: glibc would fill every allocation, touching pages a run never uses (the forward executable's arena)
small=$("$mnemo" bench --json --threads 2 --budget 0.01 --workload lstm --memory-budget 1 2>&1 | grep -o 'reaches is [0-9]*' | grep -o '[0-9]*$')
[ -n "$small" ] || { echo "FAIL: mnemo bench --memory-budget 1 named no smallest budget for the lstm"; exit 1; }
status=0
for b in 0 "$small"; do
  line=$("$mnemo" bench --workload lstm --threads 2 --budget 0.01 --json --memory-budget "$b" 2>&1 | grep '^{')
  [ -n "$line" ] || { echo "FAIL: mnemo bench --workload lstm --json --memory-budget $b printed no JSON line"; exit 1; }
  key() { grep -o "\"$1\": [0-9.]*" <<<"$line" | grep -o '[0-9.]*$'; }
  gemm=$(grep -o '"gemm": "[a-z]*"' <<<"$line" | cut -d'"' -f4)
  arena=$(key arena_bytes) params=$(key params) code=$(key code_anon_bytes)
  pred=$(key predicted_train_anon_bytes) meas=$(key train_peak_anon_bytes)
  for v in arena params code pred meas; do
    [ -n "${!v}" ] || { echo "FAIL: no $v in: $line"; exit 1; }
  done
  tol=$(( (arena + 20 * params) / 10 ))
  diff=$(( meas - pred ))
  echo "lstm, budget $b, on $gemm: arena $arena, measured $meas, predicted $pred, difference $diff, tolerance $tol, generated code $code bytes"
  if [ "${diff#-}" -gt "$tol" ]; then
    echo "FAIL: measured peak of resident data differs from the prediction by $diff bytes (more than 10% of arena + store, $tol)"
    status=1
  fi
  if [ "$gemm" = onednn ] && [ "$code" -lt 1048576 ]; then
    echo "FAIL: the products ran on oneDNN but code_anon_bytes is $code: its generated code was not found in /proc/self/smaps"
    status=1
  fi
done
[ "$gemm" = onednn ] || echo "note: products on $gemm here, oneDNN's generated code not exercised"
exit $status
