#!/usr/bin/env bash
# A caller's OpenMP settings never hang a run: under OMP_THREAD_LIMIT=1 and
# OMP_DYNAMIC=true a 2-thread training step still completes, on both
# product paths (OpenBLAS's own kernels and oneDNN's). OpenBLAS's threaded
# GEMM waits for every thread it planned for; a team that came back
# smaller hung it (core/threads.c mn__blas_threads_push). A hang shows as
# timeout's status 124 here, not as the suite's own time-out.
set -u
mnemo=$1
limit=${THREAD_ENV_TIMEOUT:-60}
fail=0
for core in "" Haswell; do
  for setting in OMP_THREAD_LIMIT=1 OMP_DYNAMIC=true; do
    for w in transformer lstm; do
      out=$(env ${core:+OPENBLAS_CORETYPE=$core} $setting timeout "$limit" "$mnemo" bench --workload "$w" --threads 2 --budget 0.01 --json 2>&1)
      rc=$?
      if [ $rc -ne 0 ] || ! grep -q '"train_ms_median"' <<<"$out"; then
        echo "FAIL: $setting, OPENBLAS_CORETYPE=${core:-unset}, $w on 2 threads: status $rc$([ $rc -eq 124 ] && echo " (hung for $limit s)")"
        echo "$out" | tail -3
        fail=1
      else
        echo "ok: $setting, OPENBLAS_CORETYPE=${core:-unset}, $w"
      fi
    done
  done
done
exit $fail
