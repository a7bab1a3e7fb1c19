#!/usr/bin/env bash
# mnemo train --model translate, mnemo translate and mnemo eval on a slice
# (issue 19): a small Transformer trained for a few steps on the eight
# verse pairs of tests/fixtures/mt_{kjv,rv}.imp memorises them (BLEU >= 90
# on its training split, greedy and beam 4), the LSTM with attention learns
# them (BLEU >= 10); the checkpoint holds the BPE
# and the configuration; translate reads arguments or standard input, one
# line out per line in; bad flags, stranger's and tampered checkpoints and
# existing outputs are refused with a message.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
fixtures=$(readlink -f "${MNEMO_FIXTURES:-$(dirname "$(readlink -f "$0")")/fixtures}")
tmp=$(mktemp -d /tmp/mnemo-cli-translate-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
small=(--src "$fixtures/mt_kjv.imp" --tgt "$fixtures/mt_rv.imp" --vocab 320 --d-model 64 --heads 4 --layers 1 --ff 128
       --batch 1024 --warmup 20 --lr 5e-3 --label-smoothing 0 --dropout 0 --threads 1)

# 1. training: a few steps, checkpoint with the BPE and the config
expect 0 "translate \(transformer, d_model 64, 1\+1 layers, 4 heads, ff 128\)" -- \
  "$mnemo" train --model translate "${small[@]}" --steps 150 --val-every 150 --out mt.st
check "data line" grep -q "^data: 8 train / 0 valid / 0 test pairs" out.txt
check "checkpoint written" test -s mt.st
"$mnemo" inspect mt.st > inspect.txt 2>&1
check "checkpoint holds the BPE" grep -q '^metadata mnemo.bpe = {"format":"mnemo-bpe"' inspect.txt
check "checkpoint holds the config" grep -q '^metadata mnemo.translate = {.*"d_model": 64' inspect.txt
check "metrics line" grep -q '"val_bleu"' mt.st.metrics.jsonl
check "training line (CPU time in steps)" grep -Eq "^training: 150 steps, [0-9]+ tokens, [0-9.]+ CPU s in steps" out.txt

# 2. eval: BLEU and chrF on the training split (memorised), greedy and beam 4
for beam in 1 4; do
  expect 0 "^train: BLEU [0-9.]+ chrF [0-9.]+ on 8 pairs \(beam $beam" -- "$mnemo" eval --ckpt mt.st --split train --beam $beam --threads 1
  bleu=$(sed -n 's/^train: BLEU \([0-9.]*\) .*/\1/p' out.txt)
  check "beam $beam: BLEU $bleu >= 90 on the training slice" python3 -c "import sys; sys.exit(not float('$bleu') >= 90)"
done
expect 1 "no test pairs" -- "$mnemo" eval --ckpt mt.st
# --batch 1 (the latency setting) decodes sentence by sentence: the same translations as batches of 16
expect 0 "^train: BLEU" -- "$mnemo" eval --ckpt mt.st --split train --beam 4 --threads 1 --hyp hyp16.txt
expect 0 "^train: BLEU" -- "$mnemo" eval --ckpt mt.st --split train --beam 4 --threads 1 --batch 1 --hyp hyp1.txt
check "eval --batch 1 translates as --batch 16" cmp hyp16.txt hyp1.txt
expect 2 "--batch" -- "$mnemo" eval --ckpt mt.st --split train --batch 17

# 3. translate: arguments, then standard input (a blank line stays blank)
expect 0 "" -- "$mnemo" translate --ckpt mt.st --threads 1 "In the beginning God created the heaven and the earth."
check "memorised translation: $(cat out.txt)" [ "$(cat out.txt)" = "EN el principio crió Dios los cielos y la tierra." ]
printf 'In the beginning God created the heaven and the earth.\n\nJesus wept.\n' > in.txt
check "translate from stdin" sh -c "'$mnemo' translate --ckpt mt.st --beam 4 --threads 1 < in.txt > lines.txt"
check "one line out per line in" [ "$(wc -l < lines.txt)" = 3 ]
check "beam 4, first line: $(head -1 lines.txt)" grep -q "^EN el .* Dios los cielos y la tierra\.$" lines.txt
check "blank line kept" [ -z "$(sed -n 2p lines.txt)" ]

# 4. the LSTM with attention: trains, translates (greedy and beam), learns the slice
expect 0 "lstm-attn: embeddings and decoder 64, bidirectional encoder 2 x 32, multiplicative attention" -- \
  "$mnemo" train --model translate --arch lstm-attn "${small[@]}" --steps 150 --val-every 150 --out lstm.st
for beam in 1 4; do
  expect 0 "^train: BLEU [0-9.]+ chrF [0-9.]+ on 8 pairs \(beam $beam" -- "$mnemo" eval --ckpt lstm.st --split train --beam $beam --threads 1
  bleu=$(sed -n 's/^train: BLEU \([0-9.]*\) .*/\1/p' out.txt)
  check "lstm-attn beam $beam: BLEU $bleu >= 10 on the training slice" python3 -c "import sys; sys.exit(not float('$bleu') >= 10)"
done
expect 0 "" -- "$mnemo" translate --ckpt lstm.st --threads 1 "Jesus wept."
check "lstm-attn translates" [ -n "$(cat out.txt)" ]

# 5. refusals
expect 1 "mt.st exists: pass --force" -- "$mnemo" train --model translate "${small[@]}" --steps 1 --out mt.st
expect 2 "--ckpt CKPT is required" -- "$mnemo" translate "Jesus wept."
expect 2 "beam" -- "$mnemo" translate --ckpt mt.st --beam 0 "Jesus wept."
expect 2 "--alpha x" -- "$mnemo" translate --ckpt mt.st --alpha x "Jesus wept."
expect 2 "--split dev: train, valid or test" -- "$mnemo" eval --ckpt mt.st --split dev
expect 2 "--arch: unknown architecture \"lstm\"" -- "$mnemo" train --model translate "${small[@]}" --arch lstm --steps 1 --out a.st
expect 2 "--d-model 30 must be 1..4096 and divisible by --heads 4" -- "$mnemo" train --model translate "${small[@]}" --d-model 30 --out b.st
expect 1 "not a translation checkpoint" -- "$mnemo" translate --ckpt "$fixtures/model_ref.safetensors" "Jesus wept."
# a tampered BPE or config is refused, naming what is wrong
python3 - mt.st bad_bpe.st bad_cfg.st <<'PY'
import json, struct, sys
src, bad_bpe, bad_cfg = sys.argv[1:4]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
def write(path, key, value):
    g = json.loads(json.dumps(h)); g['__metadata__'][key] = value
    t = json.dumps(g).encode(); t += b' ' * ((8 - len(t) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
bpe = json.loads(h['__metadata__']['mnemo.bpe']); bpe['merges'][0] = 999999
# a checkpoint without one of the model's tensors (the others' offsets closed up)
g = json.loads(json.dumps(h)); del g['mt.generator.bias']
data, off = b'', 0
for k in sorted((k for k in g if k != '__metadata__'), key=lambda k: g[k]['data_offsets'][0]):
    lo, hi = g[k]['data_offsets']; data += b[8 + n + lo:8 + n + hi]
    g[k]['data_offsets'] = [off, off + hi - lo]; off += hi - lo
t = json.dumps(g).encode(); t += b' ' * ((8 - len(t) % 8) % 8)
open('missing.st', 'wb').write(struct.pack('<Q', len(t)) + t + data)
write(bad_bpe, 'mnemo.bpe', json.dumps(bpe))
cfg = json.loads(h['__metadata__']['mnemo.translate']); cfg['heads'] = 5
write(bad_cfg, 'mnemo.translate', json.dumps(cfg))
g = json.loads(json.dumps(h)); del g['__metadata__']['mnemo.translate_state']
t = json.dumps(g).encode(); t += b' ' * ((8 - len(t) % 8) % 8)
open('no_state.st', 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
PY
expect 1 "stored BPE refused: merge 0 joins ids 999999" -- "$mnemo" translate --ckpt bad_bpe.st "Jesus wept."
expect 1 "mt.generator.bias" -- "$mnemo" translate --ckpt missing.st "Jesus wept."
expect 1 "divisible by --heads 5" -- "$mnemo" translate --ckpt bad_cfg.st "Jesus wept."

# 6. a long standard-input line is refused, naming the line (earlier lines are translated)
{ echo "Jesus wept."; head -c 20000 /dev/zero | tr '\0' 'a'; echo; echo "Jesus wept."; } > long.txt
expect 1 "standard input line 2 is longer than 16384 bytes" -- sh -c "'$mnemo' translate --ckpt mt.st --threads 1 < long.txt"
check "the line before the long one is translated" [ "$(wc -l < out.txt)" = 1 ]

# 7. exact resume: 4 steps, then --resume to 8, equals 8 steps at once (dropout on, so the
#    random stream must continue too); weights and optimizer state bit for bit
res=(--src "$fixtures/mt_kjv.imp" --tgt "$fixtures/mt_rv.imp" --vocab 320 --d-model 32 --heads 2 --layers 1 --ff 64
     --batch 256 --warmup 5 --lr 5e-3 --dropout 0.3 --threads 1 --val-bleu 0 --val-every 4)
same_tensors() {  # A B: every tensor of A equals B's, byte for byte, and they hold the same names
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = [k for k in a if a[k] != b.get(k)]
sys.exit(1 if diff or a.keys() != b.keys() or len(a) < 10 else 0)
PY
}
expect 0 "" -- "$mnemo" train --model translate "${res[@]}" --steps 8 --out full.st
expect 0 "" -- "$mnemo" train --model translate "${res[@]}" --steps 4 --out part.st
expect 0 "resuming at step 4 \(epoch 2, batch 2\) from part.st.last" -- "$mnemo" train --model translate --resume part.st.last --steps 8
check "resumed run writes beside its checkpoint" test -s part.st
check "resumed weights and optimizer state equal the uninterrupted run's" same_tensors full.st.last part.st.last
check "metrics: one line per validation step" [ "$(grep -c '"step": 8' part.st.metrics.jsonl)" = 1 ]
check "resumed losses equal" [ "$(grep '"step": 8' full.st.metrics.jsonl | cut -d, -f2)" = "$(grep '"step": 8' part.st.metrics.jsonl | cut -d, -f2)" ]
expect 0 "nothing to train: part.st.last is at step 8" -- "$mnemo" train --model translate --resume part.st.last --steps 8
expect 0 "nothing to train: part.st.last is at step 8" -- "$mnemo" train --resume part.st.last --steps 8   # the checkpoint names its model
expect 2 "--d-model cannot change when resuming" -- "$mnemo" train --model translate --resume part.st.last --steps 9 --d-model 64
expect 1 "no loop state" -- "$mnemo" train --model translate --resume no_state.st --steps 9 --out r.st

# 8. fine-tuning: the encoder of a new model starts from another checkpoint (renamed by a map),
#    frozen tensors stay bit-identical, the others train
printf 'mt.transformer.encoder.* -> mt.transformer.encoder.*\n* -> -\n' > enc.map
expect 0 "loaded 14: mt.transformer.encoder" -- "$mnemo" train --model translate "${res[@]}" --steps 4 --out ft.st \
  --init-from full.st --init-map enc.map --freeze 'mt.transformer.encoder.*' --lr-groups 'mt.tgt_emb.*=0.001'
check "frozen encoder bit-identical to its source" python3 - full.st ft.st <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
enc = [k for k in a if k.startswith('mt.transformer.encoder.')]
ok = len(enc) == 14 and all(a[k] == b[k] for k in enc) and a['mt.transformer.decoder.norm.weight'] != b['mt.transformer.decoder.norm.weight']
sys.exit(0 if ok else 1)
PY
"$mnemo" inspect ft.st > inspect_ft.txt 2>&1
check "the origin is recorded" grep -q 'mnemo.init_from = {"path":"full.st"' inspect_ft.txt
expect 2 "--freeze: .*nothing.*" -- "$mnemo" train --model translate "${res[@]}" --steps 1 --out ft2.st --freeze 'nothing.*'
expect 1 "no tensor of it fits the translate model" -- "$mnemo" train --model translate "${res[@]}" --steps 1 --out ft3.st \
  --init-from "$fixtures/model_ref.safetensors"

echo "cli_translate: $checks checks, $failures failures"
[ "$failures" = 0 ]
