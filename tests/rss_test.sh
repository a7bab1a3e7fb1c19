#!/usr/bin/env bash
# Peak memory of a training run against the plan's prediction (issue 17):
# `mnemo bench --json`'s measured peak of resident data
# (train_peak_anon_bytes) agrees with predicted_train_anon_bytes within 10%
# of the arena plus the store (5 copies of the weights).
# - The lstm, without a budget and at the smallest one the recompute pass
#   reaches, on the path whose products run on oneDNN's sgemm
#   (OPENBLAS_CORETYPE=Haswell: OpenBLAS's AVX2 kernels on an AVX-512 CPU,
#   built with oneDNN): oneDNN's generated code (code_anon_bytes, about
#   3.4 MB) is reported and not counted as data; counted, the lstm misses
#   by 12-18%.
# - The transformer at its smallest budget on oneDNN's path: its products
#   run on oneDNN's matmul primitive with the scratchpad planned in the
#   arena (ops/dnnl_mm.c); on dnnl_sgemm, whose per-call buffers left
#   11.6-12.6 MB of holes in glibc's heap, it missed by +9.2 to +14.1%.
# - The transformer at 24M on OpenBLAS (OPENBLAS_CORETYPE unset: OpenBLAS
#   keeps every product at equal width): the gradients are resident once
#   the workload is built (the store zeroes them), so the prediction
#   counts them once; counted twice (13 MB), it misses by 11%.
set -u
mnemo=$(readlink -f "$1")
unset MALLOC_PERTURB_     # meson's: glibc would fill every allocation, touching pages a run never uses (the forward executable's arena)
status=0
# check CORETYPE WORKLOAD BUDGET: one bench run and its verdict
check() {
  local line key gemm arena params code pred meas tol diff
  local coretype=(-u OPENBLAS_CORETYPE)
  [ -z "$1" ] || coretype=("OPENBLAS_CORETYPE=$1")
  line=$(env "${coretype[@]}" "$mnemo" bench --workload "$2" --threads 2 --budget 0.01 --json --memory-budget "$3" 2>&1 | grep '^{')
  [ -n "$line" ] || { echo "FAIL: mnemo bench --workload $2 --json --memory-budget $3 printed no JSON line"; status=1; return; }
  key() { grep -o "\"$1\": [0-9.]*" <<<"$line" | grep -o '[0-9.]*$'; }
  gemm=$(grep -o '"gemm": "[a-z]*"' <<<"$line" | cut -d'"' -f4)
  arena=$(key arena_bytes) params=$(key params) code=$(key code_anon_bytes)
  pred=$(key predicted_train_anon_bytes) meas=$(key train_peak_anon_bytes)
  for v in arena params code pred meas; do
    [ -n "${!v}" ] || { echo "FAIL: no $v in: $line"; status=1; return; }
  done
  tol=$(( (arena + 20 * params) / 10 ))
  diff=$(( meas - pred ))
  echo "$2, budget $3, on $gemm: arena $arena, measured $meas, predicted $pred, difference $diff, tolerance $tol, generated code $code bytes"
  if [ "${diff#-}" -gt "$tol" ]; then
    echo "FAIL: measured peak of resident data differs from the prediction by $diff bytes (more than 10% of arena + store, $tol)"
    status=1
  fi
  if [ "$gemm" = onednn ] && [ "$code" -lt 65536 ]; then      # sgemm's kernels 3.4 MB, the matmul primitive's 0.2 MB
    echo "FAIL: the products ran on oneDNN but code_anon_bytes is $code: its generated code was not found in /proc/self/smaps"
    status=1
  fi
  [ "$1" != Haswell ] || [ "$gemm" = onednn ] || echo "note: products on $gemm here, oneDNN's generated code not exercised"
}
small=$(OPENBLAS_CORETYPE=Haswell "$mnemo" bench --json --threads 2 --budget 0.01 --workload lstm --memory-budget 1 2>&1 | grep -o 'reaches is [0-9]*' | grep -o '[0-9]*$')
[ -n "$small" ] || { echo "FAIL: mnemo bench --memory-budget 1 named no smallest budget for the lstm"; exit 1; }
tsmall=$(OPENBLAS_CORETYPE=Haswell "$mnemo" bench --json --threads 2 --budget 0.01 --workload transformer --memory-budget 1 2>&1 | grep -o 'reaches is [0-9]*' | grep -o '[0-9]*$')
[ -n "$tsmall" ] || { echo "FAIL: mnemo bench --memory-budget 1 named no smallest budget for the transformer"; exit 1; }
check Haswell lstm 0
check Haswell lstm "$small"
check "" transformer 24M
check Haswell transformer "$tsmall"
exit $status
