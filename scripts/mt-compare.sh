#!/usr/bin/env bash
# Trains the default translation Transformer (KJV -> Reina-Valera 1909) with
# mnemo for SECONDS of wall-clock time, reports test BLEU and chrF (greedy
# and beam 4) and translation speed, then trains the same model in PyTorch
# (scripts/mt_torch.py: same BPE ids, batches, optimizer and schedule) for
# the same time and scores its greedy test translations with the same BLEU
# code. Figures go to docs/translation.md by hand; the machine's load makes
# times indicative (run nothing else meanwhile).
# Usage: scripts/mt-compare.sh [SECONDS (600)] [OUT_DIR (/tmp/mnemo-mt)] [-- extra train flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
secs=${1:-600}
out=${2:-/tmp/mnemo-mt}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
mnemo=$build/mnemo
bleu=$build/tests/test_mt_data
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel
[ -f "$data/kjv.imp" ] && [ -f "$data/rv1909.imp" ] || "$root/scripts/make-parallel.sh" "$data"

echo "== mnemo: train for $secs s"
"$mnemo" train --model translate --time "$secs" --threads 2 --out "$out/mnemo.st" --force \
  --export-ids "$out/ids.tsv" "$@" | tee "$out/mnemo_train.log" | grep -E "^(data|translate|step [0-9]+:|best)"
for beam in 1 4; do
  echo "== mnemo: test split, beam $beam"
  "$mnemo" eval --ckpt "$out/mnemo.st" --beam $beam --threads 2 --samples 2
done

echo "== PyTorch: train for $secs s"
/usr/bin/python3 "$root/scripts/mt_torch.py" "$out/ids.tsv" "$out/mnemo.st" "$out/torch_hyp.txt" --time "$secs" --threads 2 \
  | tee "$out/torch_train.log" | grep -E "^torch(:| greedy)"
awk -F'\t' '$1 == "test" { print $4 }' "$out/ids.tsv" > "$out/ref.txt"
echo "== PyTorch: test split, greedy: $("$bleu" --bleu "$out/torch_hyp.txt" "$out/ref.txt")"
