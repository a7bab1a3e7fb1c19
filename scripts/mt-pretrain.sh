#!/usr/bin/env bash
# Issue 23, example (2): a translation Transformer whose encoder starts from
# a Transformer pre-trained as a character language model on the English
# side of the training split, against the same model from a random start,
# both trained for the same wall-clock time AT THE SAME TIME ($THREADS
# thread(s) each, so they share the machine's load). The LM's two blocks
# and final norm become the encoder's layers and norm (--init-map); its
# character embedding and head have no counterpart in the BPE model and
# stay behind. Both translation runs use --gelu (the LM's activation).
# Prints a markdown table: validation losses, final loss and test BLEU/chrF
# (first $TEST test pairs) after equal time.
#   scripts/mt-pretrain.sh [BUILD_DIR]   (PRE=600 FT=900 THREADS=1 WARMUP=40 VAL=15 TEST=200; WORK=dir reuses lm.st)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(readlink -f "${1:-$root/build}")
mnemo=$build/mnemo
PRE=${PRE:-600} FT=${FT:-900} THREADS=${THREADS:-1} WARMUP=${WARMUP:-40} VAL=${VAL:-15} TEST=${TEST:-200}
work=${WORK:-$(mktemp -d /tmp/mnemo-mt-pretrain-XXXXXX)}
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel
[ -f "$data/kjv.imp" ] && [ -f "$data/rv1909.imp" ] || "$root/scripts/make-parallel.sh" "$data"
mkdir -p "$work"
cd "$work"
echo "work folder $work; LM ${PRE}s, translation ${FT}s each (concurrently), $THREADS thread(s); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# the English side of the training split only (the split rule of tools/parallel.c)
"$build/tests/test_mt_data" --pairs "$data/kjv.imp" "$data/rv1909.imp" pairs.tsv
awk -F'\t' '$2 == "train" { print $3 }' pairs.tsv > en_train.txt
[ -f lm.st ] || "$mnemo" train --model transformer --data en_train.txt --hidden 128 --heads 4 --ff 512 --layers 2 \
  --time "$PRE" --epochs 100 --threads "$THREADS" --out lm.st --force > lm.log
grep "best validation:" lm.log >&2 || true

cat > enc.map <<'MAP'
# the LM's blocks and final norm are the encoder's layers and norm
lm.blocks.* -> mt.transformer.encoder.layers.*
lm.ln_f.*   -> mt.transformer.encoder.norm.*
# character embedding, positions and head: nothing to receive them
*           -> -
MAP
common=(--model translate --gelu --time "$FT" --warmup "$WARMUP" --val-every "$VAL" --val-bleu 0 --threads "$THREADS" --force)
"$mnemo" train "${common[@]}" --out scratch.st > scratch.log &
a=$!
"$mnemo" train "${common[@]}" --init-from lm.st --init-map enc.map --out pretrained.st > pretrained.log &
b=$!
wait $a
wait $b
grep -A3 "^initialised from" pretrained.log >&2
for r in scratch pretrained; do
  "$mnemo" eval --ckpt "$r.st" --limit "$TEST" --threads "$THREADS" --samples 1 > "$r.eval" &
done
wait

/usr/bin/python3 - scratch pretrained <<'PY'
import json, re, sys
# validations every $VAL steps; "time" is taken after each validation (it
# includes the validation itself); both runs stop after the same --time
print("| start | steps | validation loss by step | final validation loss | test BLEU (greedy) | test chrF |")
print("|---|---:|---|---:|---:|---:|")
for name in sys.argv[1:]:
    rows = [json.loads(l) for l in open(f"{name}.st.metrics.jsonl")]
    trail = ", ".join(f"{r['step']}: {r['val_loss']:.3f}" for r in rows)
    m = re.search(r"BLEU ([0-9.]+) chrF ([0-9.]+) on (\d+)", open(f"{name}.eval").read())
    print(f"| {name} | {rows[-1]['step']} | {trail} | {rows[-1]['val_loss']:.3f} | {m.group(1)} | {m.group(2)} |")
PY
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
