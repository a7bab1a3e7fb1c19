#!/usr/bin/env bash
# The configuration and checkpoint contract of the mnemo command: every
# config (flags, --config JSON, a checkpoint's stored copy) passes one
# check in train, sample and eval (exit 1 or 2 with the field named, never
# a signal); integers are parsed whole or refused; --model beside --config
# or --resume; strict loading (every parameter from the file, none unused);
# --activation needs a gradient; --dropout acts where docs/models.md says
# and never in eval; prompt characters outside the vocabulary are named.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/mnemo-cfg-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# edit IN OUT [cfg KEY JSON] [drop TENSOR] [add TENSOR] [meta KEY VALUE]: a copy of a checkpoint, changed
cat > edit.py <<'PY'
import json, struct, sys
src, dst, ops = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(src, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
head = json.loads(raw[8:8 + n]); body = raw[8 + n:]
meta = head.pop('__metadata__', {})
tensors = {k: body[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in head.items()}
shapes = {k: v['shape'] for k, v in head.items()}
while ops:
    op = ops.pop(0)
    if op == 'cfg':
        k, v = ops.pop(0), json.loads(ops.pop(0))
        c = json.loads(meta['mnemo.config']); c[k] = v; meta['mnemo.config'] = json.dumps(c)
    elif op == 'drop':
        k = ops.pop(0); del tensors[k]; del shapes[k]
    elif op == 'add':
        k = ops.pop(0); tensors[k] = struct.pack('<4f', 0, 0, 0, 0); shapes[k] = [4]
    elif op == 'meta':
        k = ops.pop(0); meta[k] = ops.pop(0)
out, data = {'__metadata__': meta}, b''
for k in tensors:
    out[k] = {'dtype': 'F32', 'shape': shapes[k], 'data_offsets': [len(data), len(data) + len(tensors[k])]}
    data += tensors[k]
h = json.dumps(out).encode(); h += b' ' * (-len(h) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(h)) + h + data)
PY
edit() { "$py" edit.py "$@" || fail "edit.py $*"; }

text=/usr/share/games/fortunes/fortunes
small=(--data "$text" --hidden 16 --embed 8 --batch 4 --seq 16 --val-every 2 --val-batches 1 --threads 1)
expect 0 "validation" -- "$mnemo" train "${small[@]}" --steps 2 --seed 9223372036854775807 --out lm.st
expect 0 "validation" -- "$mnemo" train "${small[@]}" --model transformer --heads 2 --ff 16 --layers 1 --steps 2 --out tr.st

# item 16: integers whole and in range, from flags and from JSON
expect 2 "--batch: bad value \"12abc\"" -- "$mnemo" train --batch 12abc --steps 1
expect 2 "--batch: bad value \"12abc\"" -- "$mnemo" graph --model mlp --batch 12abc
expect 2 "--hidden: bad value \"3e10\"" -- "$mnemo" train --hidden 3e10 --steps 1
expect 2 "--seed: bad value \"-1\"" -- "$mnemo" train --seed -1 --steps 1
expect 2 "--seed: bad value \"9223372036854775808\"" -- "$mnemo" train --seed 9223372036854775808 --steps 1
expect 2 "--hidden: 100000 is not allowed; it takes a whole number from 1 to 65536" -- "$mnemo" train --hidden 100000 --steps 1
expect 2 "--seed: bad value \"-1\"" -- "$mnemo" sample --ckpt lm.st --seed -1 -n 3
expect 2 "--top-k: bad value \"99999999999\"" -- "$mnemo" sample --ckpt lm.st --top-k 99999999999 -n 3
echo '{"model": "lstm", "hidden": 4294967312}' > huge.json
expect 2 "\"hidden\": 4294967312 is out of range" -- "$mnemo" train --config huge.json --data "$text" --steps 1
echo '{"model": "lstm", "seed": -5}' > neg.json
expect 2 "\"seed\": -5 is out of range" -- "$mnemo" train --config neg.json --data "$text" --steps 1

# item 4: a checkpoint's stored config is checked by sample and eval as by train (exit 1, never a signal)
edit tr.st heads0.st cfg heads 0
expect 1 "stored config is invalid: \"heads\"" -- "$mnemo" sample --ckpt heads0.st -n 5
edit tr.st seqbig.st cfg seq 100000
expect 1 "stored config is invalid: \"seq\"" -- "$mnemo" sample --ckpt seqbig.st -n 5
edit tr.st seqneg.st cfg seq -1
expect 1 "stored config is invalid: \"seq\"" -- "$mnemo" sample --ckpt seqneg.st -n 5
expect 1 "stored config is invalid: \"seq\"" -- "$mnemo" eval --ckpt seqneg.st
edit lm.st batch0.st cfg batch 0
expect 1 "stored config is invalid: \"batch\"" -- "$mnemo" eval --ckpt batch0.st
edit lm.st seq0.st cfg seq 0
expect 1 "stored config is invalid: \"seq\"" -- "$mnemo" eval --ckpt seq0.st
edit lm.st.last seq0.last cfg seq 0
expect 2 "seq0.last: its stored config is invalid: \"seq\": 0 is not allowed" -- "$mnemo" train --resume seq0.last --steps 3 --out resumed.st
edit lm.st hbig.st cfg hidden 4294967312
expect 1 "\"hidden\": 4294967312 is out of range" -- "$mnemo" eval --ckpt hbig.st

# item 12: strict loading names missing, misshapen and unused tensors (eval, sample, resume)
edit lm.st nobias.st drop head.bias
expect 1 "missing: head.bias" -- "$mnemo" eval --ckpt nobias.st
expect 1 "missing: head.bias" -- "$mnemo" sample --ckpt nobias.st -n 5
edit lm.st.last nobias.last drop head.bias
expect 1 "missing: head.bias" -- "$mnemo" train --resume nobias.last --steps 3 --out resumed.st
edit lm.st layers2.st cfg layers 2
expect 1 "4 parameters of the model are missing: rnn.weight_ih_l1, rnn.weight_hh_l1, rnn.bias_ih_l1, rnn.bias_hh_l1" -- "$mnemo" eval --ckpt layers2.st
edit lm.st junk.st add junk.weight
expect 1 "does not use: junk.weight" -- "$mnemo" eval --ckpt junk.st
expect 1 "does not use: junk.weight" -- "$mnemo" sample --ckpt junk.st -n 5
edit lm.st wide.st cfg hidden 32
expect 1 "another shape" -- "$mnemo" sample --ckpt wide.st -n 5

# item 21: an empty vocabulary is named
edit lm.st novocab.st meta mnemo.vocab '[]'
expect 1 "mnemo.vocab is missing" -- "$mnemo" eval --ckpt novocab.st
expect 1 "mnemo.vocab is missing" -- "$mnemo" sample --ckpt novocab.st -n 5

# item 17: --model beside --config wins; beside --resume it must be the checkpoint's model
echo '{"model": "gru", "hidden": 16, "embed": 8}' > gru.json
expect 0 "^lstm on " -- "$mnemo" train --model lstm --config gru.json "${small[@]:0:2}" --batch 4 --seq 16 --steps 1 --val-every 1 --val-batches 1 --out flag.st
expect 0 "^gru on " -- "$mnemo" train --config gru.json "${small[@]:0:2}" --batch 4 --seq 16 --steps 1 --val-every 1 --val-batches 1 --out cfg.st
expect 2 "--model gru: lm.st.last holds a lstm model" -- "$mnemo" train --resume lm.st.last --model gru --steps 3 --out r.st
expect 0 "resuming at step 2" -- "$mnemo" train --resume lm.st.last --model lstm --steps 3 --out r.st
expect 2 "\"model\" is \"gru\" but the checkpoint holds a lstm model" -- "$mnemo" train --resume lm.st.last --config gru.json --steps 3 --out r.st

# item 18: the activation needs a gradient; the message lists accepted ones
expect 2 "--activation: \"gt\" has no gradient; accepted: .*relu" -- "$mnemo" train --model mlp --activation gt --steps 1
expect 2 "--activation: \"relu_grad\" .*accepted" -- "$mnemo" train --model mlp --activation relu_grad --steps 1
expect 2 "--activation: \"nope\" is not a registered op" -- "$mnemo" train --model mlp --activation nope --steps 1

# item 14 (sample side): prompt characters the model never saw are named and counted
expect 1 "--prompt: 3 characters are not in the model's vocabulary .*'\{'" -- "$mnemo" sample --ckpt lm.st --prompt $'A\x01{\x02' -n 5
expect 0 "^The " -- "$mnemo" sample --ckpt lm.st --prompt "The " -n 5
for i in $(seq 40); do printf 'The cat sat on the mat.\n'; done > odd.txt; printf 'The cat\x01 sat {on} the mat.\n' >> odd.txt
expect 0 "3 characters outside the checkpoint's vocabulary, read as byte 32" -- "$mnemo" eval --ckpt lm.st --data odd.txt

# item 15: --dropout changes training where docs/models.md says (a 1-layer rnn, the vae, the mlp) and never eval
loss1() { sed -n 's/.*"step": 1, "epoch": [0-9]*, "train_loss": \([-0-9.e]*\), "time".*/\1/p' "$1" | head -1; }
for m in rnn vae mlp tagger; do
  case $m in
    vae|mlp) args=(--model $m --limit 256 --batch 32 --hidden 32) ;;
    tagger) args=(--model tagger --batch 8 --hidden 16 --embed 16) ;;
    *) args=(--model $m "${small[@]:0:2}" --hidden 16 --embed 8 --batch 4 --seq 16) ;;
  esac
  "$mnemo" train "${args[@]}" --steps 1 --val-every 1 --val-batches 1 --threads 1 --out d0_$m.st > /dev/null 2>&1
  "$mnemo" train "${args[@]}" --steps 1 --val-every 1 --val-batches 1 --threads 1 --dropout 0.5 --out d5_$m.st > /dev/null 2>&1
  a=$(loss1 d0_$m.st.metrics.jsonl); b=$(loss1 d5_$m.st.metrics.jsonl)
  checks=$((checks + 1))
  if [ -z "$a" ] || [ -z "$b" ] || [ "$a" = "$b" ]; then fail "$m: --dropout 0.5 left the first training loss at $a (no dropout: $b)"; fi
done
# eval: the same weights give the same figures whatever the stored dropout
edit d5_mlp.st d5_mlp_nodrop.st cfg dropout 0
"$mnemo" eval --ckpt d5_mlp.st > e5.txt 2>&1; "$mnemo" eval --ckpt d5_mlp_nodrop.st > e0.txt 2>&1
checks=$((checks + 1)); [ "$(grep -E '^(loss|accuracy)' e5.txt)" = "$(grep -E '^(loss|accuracy)' e0.txt)" ] && grep -q '^loss' e5.txt || \
  fail "eval depends on the stored dropout: $(grep -E '^loss' e5.txt e0.txt)"
edit d5_rnn.st d5_rnn_nodrop.st cfg dropout 0
"$mnemo" eval --ckpt d5_rnn.st > e5.txt 2>&1; "$mnemo" eval --ckpt d5_rnn_nodrop.st > e0.txt 2>&1
checks=$((checks + 1)); [ "$(grep '^loss' e5.txt)" = "$(grep '^loss' e0.txt)" ] && grep -q '^loss' e5.txt || fail "rnn eval depends on the stored dropout"

# strict loading for the VAE's sampler too: no PNG from invented weights
edit d5_vae.st vae_nofc3.st drop vae.fc3.bias
expect 1 "missing: vae.fc3.bias" -- "$mnemo" sample --ckpt vae_nofc3.st --out nofc3.png
checks=$((checks + 1)); [ ! -e nofc3.png ] || fail "a PNG was written from a checkpoint missing vae.fc3.bias"

echo "cli_config: $checks checks, $failures failures"
[ "$failures" = 0 ]
