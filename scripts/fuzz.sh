#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz for a given time each:
#   scripts/fuzz.sh TARGET|all SECONDS      (0 seconds: only re-minimise the corpus)
# Builds build-fuzz/ with clang and -Dfuzz=true (once), fuzzes with one
# worker (fork mode: a crash, leak, out-of-memory or timeout is saved and
# the run goes on), minimises the committed corpus tests/fuzz/corpus/TARGET
# with the new inputs (seeds with names stay), and prints per target the executions,
# executions per second, libFuzzer's coverage figures (cov: edges, ft:
# features; "run" from the run's last status line, "corpus" from the
# committed corpus replayed alone) and the files of any finding. Findings
# are left in build-fuzz/fuzz-work/TARGET/crashes/: copy a reproducer to
# tests/fuzz/crashes/TARGET/ under a name that says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
targets="safetensors checkpoint config idx text brown onnx"
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]] || { [ "$1" != all ] && ! [[ " $targets " == *" $1 "* ]]; }; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS   (targets: $targets)" >&2
  exit 2
fi
[ "$1" = all ] || targets=$1
seconds=$2

export PKG_CONFIG_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
build=${MNEMO_FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$build" $(for t in $targets; do echo "tests/fuzz/fuzz_$t"; done) >/dev/null

# One thread, no spinning; the targets' temporary files in memory when possible.
# ASan: a 16 MB quarantine (not 256: freed memory is reused sooner, runs are 2x
# faster); an allocation above 256 MB returns NULL, as in a process under a
# memory limit, so the NOMEM paths run and a size a header declares does not
# stall the run (issue 14 item 19: the idx target ran 5 execs/s without it).
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=1
# A crashing input skips the targets' clean-up of their temporary folder:
# give them one folder for the whole run, removed at the end.
tmpbase=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then tmpbase=/dev/shm; fi
TMPDIR=$(mktemp -d "$tmpbase/mnemo-fuzz-run.XXXXXX")
export TMPDIR
# libomp (clang's OpenMP) leaves /dev/shm/__KMP_REGISTERED_LIB_<pid>_<uid> behind
# for every crashed input's process: remove those of processes that are gone.
cleanup() {
  rm -rf "$TMPDIR"
  for f in /dev/shm/__KMP_REGISTERED_LIB_*; do
    [ -e "$f" ] || continue
    pid=${f##*_LIB_}
    kill -0 "${pid%%_*}" 2>/dev/null || rm -f "$f"
  done
}
trap cleanup EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=256:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/fuzz/ubsan_known_unfixed.supp}
# Known findings whose fixes are pending do not stop the run: UBSan reports
# listed in the suppression file, and the checks of a target that test for
# MNEMO_FUZZ_IGNORE_KNOWN (each names its reproducer in tests/fuzz/crashes/).
export MNEMO_FUZZ_IGNORE_KNOWN=1

strict() { env -u MNEMO_FUZZ_IGNORE_KNOWN UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$@"; }

# Largest input (bytes) a target keeps in the committed corpus (0: any): the
# checkpoint target's mutants of the 40-90 KB mlp and vae seeds stay out.
cap_of() { if [ "$1" = checkpoint ]; then echo 34000; else echo 0; fi; }

dict_of() {
  case $1 in
    config|checkpoint|safetensors) echo "-dict=tests/fuzz/dict/json.dict" ;;
    brown) echo "-dict=tests/fuzz/dict/brown.dict" ;;
  esac
}

for t in $targets; do
  bin=$build/tests/fuzz/fuzz_$t
  work=$build/fuzz-work/$t
  tree=tests/fuzz/corpus/$t
  mkdir -p "$work/corpus" "$work/crashes"
  before=$(ls "$tree" | wc -l)
  touch "$work/started"
  : >"$work/log"
  echo "== $t: $seconds s"
  # shellcheck disable=SC2046
  [ "$seconds" -eq 0 ] || "$bin" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$seconds" \
    -timeout=20 -rss_limit_mb=2048 -close_fd_mask=3 -print_final_stats=1 $(dict_of "$t") \
    -artifact_prefix="$work/crashes/" "$work/corpus" "$tree" >"$work/log" 2>&1 || true
  # the last status line: "#N: cov: C ft: F corp: K exec/s E oom/timeout/crash: a/b/c time: Ts ..."
  last=$(grep -E '^#[0-9]+: cov:' "$work/log" | tail -n 1 || true)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  rate=$(sed -E 's/.*exec\/s:? ([0-9]+).*/\1/' <<<"$last")
  findings=$(sed -E 's/.*oom\/timeout\/crash: ([0-9\/]+).*/\1/' <<<"$last")
  runcov=$(sed -E 's/.* cov: ([0-9]+) ft: ([0-9]+).*/cov: \1 ft: \2/' <<<"$last")
  # The committed corpus becomes the hand-made seeds (names that are not
  # hashes) plus a minimal set of the old and new inputs covering all that
  # they cover (libFuzzer's merge, smaller inputs first).
  # Inputs above the target's size cap stay out, to keep the tree small.
  fresh=$work/merged cand=$work/candidates
  rm -rf "$fresh" "$cand" && mkdir -p "$fresh" "$cand"
  for f in "$tree"/* "$work"/corpus/*; do
    [ -f "$f" ] || continue
    if ! [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]]; then cp "$f" "$fresh/"
    elif [ "$(cap_of "$t")" -eq 0 ] || [ "$(stat -c %s "$f")" -le "$(cap_of "$t")" ]; then cp "$f" "$cand/"; fi
  done
  # Strict: without the known-finding allowances, so that every committed
  # input passes the replay of the suite.
  if strict "$bin" -merge=1 -timeout=20 -rss_limit_mb=2048 -close_fd_mask=3 -artifact_prefix="$work/merge-" "$fresh" "$cand" >"$work/merge.log" 2>&1; then
    rm -rf "$tree" && mv "$fresh" "$tree"
  else
    echo "  merge failed (see $work/merge.log); corpus unchanged"
  fi
  after=$(ls "$tree" | wc -l)
  # coverage of the committed corpus alone, as the replay runs it
  inited=$(strict "$bin" -runs=0 -close_fd_mask=3 -artifact_prefix="$work/replay-" "$tree" 2>&1 | grep -E 'INITED|DONE' | tail -n 1 || true)
  cov=$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<<"$inited")
  ft=$(sed -E 's/.*ft: ([0-9]+).*/\1/' <<<"$inited")
  echo "$t: ${execs:-0} execs in $seconds s (${rate:-0} exec/s), run $runcov, corpus cov: $cov ft: $ft," \
       "corpus $before -> $after files, oom/timeout/crash: ${findings:-0/0/0}"
  for f in "$work"/crashes/*; do if [ "$f" -nt "$work/started" ]; then echo "  finding: $f"; fi; done
done
