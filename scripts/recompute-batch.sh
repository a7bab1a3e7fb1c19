#!/usr/bin/env bash
# The largest LSTM batch that trains in a memory size (issue 17), with and
# without a budget: the character LSTM of the lstm_long workload (T 512,
# hidden 512, embedding 64, vocabulary 96) at batch B, compiled by
# `mnemo graph --format stats` (nothing runs). A training process needs the
# plan's predicted peak (arena + inputs + weights + gradients), Adam's two
# moments and the gradient backup of a run (3 more copies of the weights)
# and a base of BASE bytes (libraries, OpenBLAS buffers, the data set). With a
# budget the arena is the smallest one recomputation reaches (the error of
# --memory-budget 1 names it).
# Usage: [WINDOW=32] [ONLY="0 1"] scripts/recompute-batch.sh [MNEMO] [BYTES (default: MemTotal)] [BASE (default 256M)]
set -uo pipefail
mnemo=${1:-build/mnemo}
total=${2:-$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024))}
base=${3:-268435456}
model=(--model lstm --seq 512 --hidden 512 --embed 64 --layers 1 --threads 2)

stat() { grep "^$1 " | head -1 | awk '{ print $2 }'; }

# need B BUDGETED: the bytes a training step at batch B holds (-1: the
# compile fails, e.g. an arena larger than the memory cannot be allocated)
params=
need() {
  local s peak arena small
  if [ -z "$params" ]; then
    params=$("$mnemo" graph "${model[@]}" --batch 1 --format stats 2>&1 | stat parameters)
  fi
  if [ "$2" = 1 ]; then      # the smallest arena (a failed compile: nothing is allocated), inputs x and y (int32)
    small=$("$mnemo" graph "${model[@]}" --batch "$1" --format stats --memory-budget 1 2>&1 | grep -o 'reaches is [0-9]*' | grep -o '[0-9]*$')
    [ -z "$small" ] && { echo -1; return; }
    echo $((small + 2 * 4 * 512 * $1 + 5 * 4 * params + base))
    return
  fi
  s=$("$mnemo" graph "${model[@]}" --batch "$1" --format stats 2>&1) || { echo -1; return; }
  peak=$(stat predicted_peak_bytes <<<"$s")
  echo $((peak + 3 * 4 * params + base))
}

# Without a budget the need grows linearly with B (every activation is B
# rows): from batches 64 and 128 the line gives a guess, and a bisection of
# +-32 around it settles it. Under a budget the smallest arena grows faster
# than the line at large B (the plans the search reaches differ), so the
# window is checked first: when its low end does not fit, the bisection
# runs from batch 128 up to it; when its high end fits, the high end
# doubles until it does not.
fits() { [ "$1" -ge 0 ] && [ "$1" -le "$total" ]; }
largest() {
  local n64 n128 guess lo hi mid n
  n64=$(need 64 "$1")
  n128=$(need 128 "$1")
  guess=$((64 + (total - n64) * 64 / (n128 - n64)))
  echo "  batch 64: $n64, 128: $n128 bytes; linear guess $guess" >&2
  lo=$((guess - ${WINDOW:-32})) hi=$((guess + ${WINDOW:-32}))
  n=$(need "$lo" "$1")
  echo "  batch $lo: $n bytes" >&2
  if ! fits "$n"; then hi=$lo; lo=128; fi
  while n=$(need "$hi" "$1") && echo "  batch $hi: $n bytes" >&2 && fits "$n"; do lo=$hi; hi=$((hi * 2)); done
  while [ $((hi - lo)) -gt 1 ]; do
    mid=$(((lo + hi) / 2))
    n=$(need "$mid" "$1")
    echo "  batch $mid: $n bytes" >&2
    if [ "$n" -ge 0 ] && [ "$n" -le "$total" ]; then lo=$mid; else hi=$mid; fi
  done
  echo "$lo"
}

echo "memory: $total bytes; base $base bytes; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for b in ${ONLY:-0 1}; do
  B=$(largest "$b")
  printf "%-22s largest batch %6d (needs %d bytes; batch %d needs %d)\n" "$([ "$b" = 1 ] && echo 'smallest budget' || echo 'no budget')" \
    "$B" "$(need "$B" "$b")" $((B + 1)) "$(need $((B + 1)) "$b")"
done
