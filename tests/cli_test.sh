#!/usr/bin/env bash
# The mnemo command end to end: --help of every subcommand, usage errors
# (exit 2, naming the flag), data and checkpoint errors (exit 1, clear
# message, nothing overwritten), exact resume after SIGKILL, and short
# training runs that reach stated bounds (tagger accuracy on held-out Brown
# sentences, LSTM validation loss on a KJV slice, VAE loss on test images).
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
scripts=$(readlink -f "$(dirname "$0")/../scripts")
swish=$(readlink -f "${2:-swish.so}")
tmp=$(mktemp -d /tmp/mnemo-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

for sub in train sample eval inspect graph ops bench; do
  expect 0 "usage: mnemo $sub" -- "$mnemo" $sub --help
done
# ops -v lists each op's attributes from its schema (name and type)
checks=$((checks + 1))
"$mnemo" ops -v | grep -A2 '^slice ' | grep -qx '    attributes: axis int, start int64, stop int64, step int64' ||
  fail "mnemo ops -v: slice's attributes (axis, start, stop, step) are not listed"
checks=$((checks + 1))
"$mnemo" ops -v | grep -A2 '^neg ' | grep -qx '    attributes: none' || fail "mnemo ops -v: neg should list no attributes"
expect 0 "commands:" -- "$mnemo" --help
expect 2 "unknown command" -- "$mnemo" frobnicate
expect 2 "--frobnicate" -- "$mnemo" train --frobnicate
expect 2 "--lr: bad value \"abc\"" -- "$mnemo" train --lr abc
expect 2 "--batch: 0 is not allowed; it takes a whole number from 1 to 65536" -- "$mnemo" train --batch 0
expect 2 "--epochs" -- "$mnemo" train --epochs
expect 2 "unknown model \"cnn\"" -- "$mnemo" train --model cnn
expect 2 "--optim: unknown optimizer \"adamax\"" -- "$mnemo" train --optim adamax
expect 2 "--schedule" -- "$mnemo" train --schedule zigzag
expect 2 "-n: bad value" -- "$mnemo" sample --ckpt x -n -3
expect 2 "--ckpt CKPT is required" -- "$mnemo" sample
expect 2 "--ckpt CKPT is required" -- "$mnemo" eval
expect 2 "--format" -- "$mnemo" graph --format pdf
expect 2 "--threads" -- "$mnemo" bench --threads -1
# every subcommand reads --threads alike: a whole integer from 0, else a usage error naming it
expect 2 '--threads: bad value "12abc"' -- "$mnemo" bench --threads 12abc
expect 2 '--threads: bad value "2x"' -- "$mnemo" sample --ckpt x --threads 2x
expect 2 '--threads: bad value "-1"' -- "$mnemo" eval --ckpt x --threads -1
# ... and every subcommand compiles through tools/env.c, so MNEMO_* variables and binding apply to all
checks=$((checks + 1))
unwrapped=$(grep -n 'mn_compile(' "$scripts"/../tools/*.c | grep -v 'mn_tools_compile_opts(')
[ -z "$unwrapped" ] || fail "compiles that bypass mn_tools_compile_opts (tools/env.c): $unwrapped"
echo '{"model": "lstm", "hidden": "big"}' > bad.json
expect 2 "\"hidden\" must be an integer" -- "$mnemo" train --config bad.json
echo '{"model": "lstm", "hiden": 3}' > typo.json
expect 2 "unknown key \"hiden\"" -- "$mnemo" train --config typo.json
echo '{"model": "lstm",' > broken.json
expect 2 "JSON" -- "$mnemo" train --config broken.json

# data errors
expect 1 "no-such-file.txt" -- "$mnemo" train --data no-such-file.txt --steps 1
mkdir fm && printf 'not gzip and not idx' > fm/train-images-idx3-ubyte.gz && cp fm/train-images-idx3-ubyte.gz fm/train-labels-idx1-ubyte.gz
expect 1 "idx .*fm/train-images" -- "$mnemo" train --model mlp --data fm --steps 1
printf 'The/at cat/nn sat\n' > brown_bad && mkdir brown && mv brown_bad brown/ca01
expect 1 "brown .*ca01 line 1: token \"sat\" is not word/tag" -- "$mnemo" train --model tagger --data brown --steps 1

# bench --profile-steps: one line per step; profile-compare reads two of them
expect 0 "per-step times written" -- "$mnemo" bench --workload mlp --threads 1 --budget 0.2 --profile-steps steps.tsv
expect 1 "cannot write .*no-such-dir/steps.tsv" -- "$mnemo" bench --workload mlp --threads 1 --budget 0.1 --profile-steps no-such-dir/steps.tsv
checks=$((checks + 1)); head -1 steps.tsv | grep -q $'^level\tstep\top\tnode\tshape' || fail "steps.tsv header: $(head -1 steps.tsv)"
checks=$((checks + 1)); [ "$(grep -c $'\tmatmul\t' steps.tsv)" -ge 8 ] || fail "steps.tsv lacks the mlp's 8 GEMMs"
expect 0 "^matmul +\[128,512\]" -- python3 "$scripts/profile-compare.py" steps.tsv steps.tsv
# bench's JSON names the CPU and the compile time; --compile and --infer (weights saved for scripts/infer_torch.py)
expect 0 '"cpu": "[^"]+", "cpu_ext": "[a-z0-9_ ]*", "blas_core": "[A-Za-z0-9]+", "compile_ms": [0-9.]+' -- "$mnemo" bench --workload mlp --threads 1 --budget 0.1 --json
expect 0 '"gemm": "(openblas|onednn)"\}' -- "$mnemo" bench --workload mlp --threads 1 --budget 0.1 --json
expect 0 '"compile": "vae", .*"compile_cpu_ms": [0-9.]+, .*"pass_ms": \{"autodiff"' -- "$mnemo" bench --compile --json --workload vae --threads 1
# the translation Transformer's step (issue 22's seq2seq workload, by name only) builds and compiles
expect 0 '"compile": "seq2seq", .*"compile_cpu_ms": [0-9.]+' -- "$mnemo" bench --compile --json --workload seq2seq --threads 1
mkdir infer_w
expect 0 '"infer": "lstm_lm", .*"tokens_per_s": [0-9.]+, .*"probe_logits": \[' -- "$mnemo" bench --infer --json --workload lstm_lm --threads 1 --budget 0.1 --save-weights infer_w
checks=$((checks + 1)); [ -s infer_w/lstm_lm.safetensors ] || fail "bench --infer --save-weights wrote no infer_w/lstm_lm.safetensors"
expect 2 'unknown workload "nope"' -- "$mnemo" bench --infer --workload nope
expect 0 "A/B 1.00" -- python3 "$scripts/profile-compare.py" steps.tsv steps.tsv

# graph: stats name the compiler's passes; DOT draws fused groups as clusters
stats=$("$mnemo" graph --model lstm --batch 4 --format stats)
checks=$((checks + 1)); grep -q '^fused [1-9][0-9]* groups' <<<"$stats" || fail "graph stats lack fused groups: $stats"
for p in autodiff dce cse fuse direct schedule plan verify; do
  checks=$((checks + 1)); grep -q "^pass $p.ms [0-9]" <<<"$stats" || fail "graph stats lack the $p pass's time: $stats"
done
checks=$((checks + 1)); grep -q '^pass plan.arena_bytes [1-9][0-9]*$' <<<"$stats" || fail "graph stats lack the plan's counters: $stats"
checks=$((checks + 1)); "$mnemo" graph --model gru --batch 4 --seq 8 | grep -q 'subgraph cluster_f' || fail "graph DOT has no fused cluster"
# a graph of more than 1000 values draws its fused members loose (Graphviz's dot fails on some large clustered graphs)
checks=$((checks + 1)); dotbig=$("$mnemo" graph --model gru --batch 4)
grep -q 'subgraph cluster_f' <<<"$dotbig" && fail "graph DOT of the default gru (2,950 values) still has clusters"
grep -q 'tooltip="fused group' <<<"$dotbig" || fail "graph DOT of the default gru does not mark its fused members"
# graph --threads: the schedule of a run on that many threads (big steps of a level split only with 2 or more)
expect 2 '--threads: bad value "2x"' -- "$mnemo" graph --threads 2x
expect 0 '^pass schedule.split_levels 0$' -- "$mnemo" graph --model vae --batch 4 --format stats --threads 1
expect 0 '^pass schedule.split_levels [1-9]' -- "$mnemo" graph --model vae --batch 4 --format stats --threads 2
expect 0 '^pass schedule.threads 2$' -- "$mnemo" graph --model mlp --format stats --threads 2

# --memory-budget (issue 17): a budget no plan meets names the smallest that works; training at
# that budget (recomputing forward values, dropout on) writes the same weights and optimizer state
expect 2 '--memory-budget: bad value "12Q"' -- "$mnemo" train --memory-budget 12Q
expect 2 '--memory-budget: bad value "-1"' -- "$mnemo" graph --memory-budget -1
expect 0 '^pass recompute.steps [1-9]' -- "$mnemo" graph --model transformer --batch 4 --format stats --memory-budget 4M
# ... and the stats name what the budget costs and what a training process holds
expect 0 '^recomputed_values [1-9][0-9]* \(by [1-9][0-9]* steps in [0-9]+ segments, [0-9]+ pointwise values mirrored\)$' -- "$mnemo" graph --model transformer --batch 4 --format stats --memory-budget 4M
expect 0 '^added_flops [1-9][0-9]* \(\+[0-9.]+%\)$' -- "$mnemo" graph --model transformer --batch 4 --format stats --memory-budget 4M
expect 0 '^predicted_peak_bytes [1-9][0-9]*$' -- "$mnemo" graph --model transformer --batch 4 --format stats --memory-budget 4M
# bench --json reports the budget, what is recomputed and the compile time; the search plans in full
# only the candidates whose estimate fits (rnn, its input projection folded: the plain plan and two of 139)
# (at its smallest arena, which the error of an impossible budget names: the mirror alone
# since the rnn's outputs come in blocks, so no segment there)
rnn_min=$("$mnemo" graph --model rnn --format stats --memory-budget 1 2>&1 | sed -n 's/.*recomputation reaches is \([0-9]*\) bytes.*/\1/p')
check "the smallest rnn arena under a budget is named" [ -n "$rnn_min" ]
expect 0 "\"memory_budget_bytes\": $rnn_min, \"recompute_segments\": [0-9][0-9]*, \"recompute_values\": [1-9]" -- "$mnemo" bench --workload rnn --threads 1 --budget 0.1 --json --memory-budget "$rnn_min"
expect 0 '^pass recompute.full_plans 3$' -- "$mnemo" graph --model rnn --format stats --memory-budget "$rnn_min"
# bench --against-plain: the budgeted step and the plain one alternate in one process; both arenas and the ratio
expect 2 '--against-plain needs --memory-budget' -- "$mnemo" bench --workload rnn --against-plain
"$mnemo" bench --workload rnn --threads 1 --budget 0.1 --json --memory-budget "$rnn_min" --against-plain > vs_plain.json
check "bench --against-plain runs both steps, the budgeted one inside its budget" python3 -c "
import json; r = json.loads(open('vs_plain.json').readline())
assert r['workload'] == 'rnn' and r['pairs'] >= 3 and r['memory_budget_bytes'] == $rnn_min
assert r['budgeted_arena_bytes'] <= r['memory_budget_bytes'] < r['plain_arena_bytes'] and r['recompute_added_flops'] > 0
assert 0 < r['pair_ratio_min'] <= r['pair_ratio_median'] <= r['pair_ratio_max'] and r['ratio_of_medians'] > 0"
python3 -c "
import random; random.seed(1)
w = ['the', 'lord', 'said', 'unto', 'moses', 'and', 'it', 'was', 'so', 'light']
open('budget.txt', 'w').write('\n'.join(' '.join(random.choice(w) for _ in range(12)) for _ in range(300)))"
same_tensors() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
def tensors(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
sys.exit(0 if a and a.keys() == b.keys() and all(a[k] == b[k] for k in a) else 1)
PY
}
for m in lstm transformer; do    # the recompute suite covers every model kind
  small=(--model "$m" --data budget.txt --steps 3 --batch 4 --seq 16 --hidden 32 --embed 16 --ff 32 --dropout 0.2 --seed 1
         --threads 2 --val-every 100 --val-batches 1)
  expect 1 "the smallest arena recomputation reaches is [0-9]+ bytes" -- "$mnemo" train "${small[@]}" --out "nb-$m.st" --memory-budget 1
  need=$(grep -o 'reaches is [0-9]*' err.txt | grep -o '[0-9]*$')
  expect 0 "" -- "$mnemo" train "${small[@]}" --out "plain-$m.st"
  expect 0 "memory budget $need bytes: arena [0-9]+ bytes, [1-9][0-9]* values recomputed" -- "$mnemo" train "${small[@]}" --out "budget-$m.st" --memory-budget "$need"
  check "$m: weights and optimizer state after 3 steps differ under --memory-budget $need" same_tensors "plain-$m.st.last" "budget-$m.st.last"
  # the budget is part of the stored config: a resumed run keeps it
  [ "$m" = lstm ] && expect 0 "memory budget $need bytes: arena" -- "$mnemo" train --resume "budget-$m.st.last" --steps 4
done
if command -v dot >/dev/null; then
  checks=$((checks + 1)); "$mnemo" graph --model gru --batch 4 --seq 8 | dot -Tsvg >/dev/null || fail "graphviz rejects the DOT"
fi

# checkpoint errors: nothing is overwritten
head -c 100 /dev/urandom > corrupt.safetensors; cp corrupt.safetensors corrupt.orig
expect 1 "corrupt.safetensors" -- "$mnemo" train --resume corrupt.safetensors --out corrupt.safetensors --steps 1
checks=$((checks + 1)); cmp -s corrupt.safetensors corrupt.orig || fail "a corrupt checkpoint was overwritten"
expect 1 "header" -- "$mnemo" eval --ckpt corrupt.safetensors
text=/usr/share/games/fortunes/fortunes
common=(--data "$text" --hidden 32 --embed 16 --batch 8 --seq 32 --val-every 10 --val-batches 4 --threads 2)
expect 0 "validation" -- "$mnemo" train "${common[@]}" --steps 20 --out good.safetensors
head -c 2000 good.safetensors > truncated.safetensors
expect 1 "truncated.safetensors" -- "$mnemo" sample --ckpt truncated.safetensors
expect 0 "F32" -- "$mnemo" inspect good.safetensors
printf '\x40\x00\x00\x00\x00\x00\x00\x00{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}          \x00\x00\x80\x3f' > foreign.safetensors
expect 0 "x .*F32" -- "$mnemo" inspect foreign.safetensors
expect 1 "not a mnemo training checkpoint" -- "$mnemo" sample --ckpt foreign.safetensors
# a FIFO named as a checkpoint or config is refused at once, never waited on
mkfifo pipe.safetensors
expect 1 "load pipe.safetensors: not a regular file" -- timeout 20 "$mnemo" inspect pipe.safetensors
expect 1 "load pipe.safetensors: not a regular file" -- timeout 20 "$mnemo" eval --ckpt pipe.safetensors
expect 1 "load pipe.safetensors: not a regular file" -- timeout 20 "$mnemo" train --resume pipe.safetensors --steps 1
expect 2 "config pipe.safetensors: not a regular file" -- timeout 20 "$mnemo" train --config pipe.safetensors --steps 1
# names and metadata from a file never send control bytes to the terminal
printf '\x77\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"note":"\\u001b[31mred\\u0007 \\u009b2J"},"w\\u001b]0;t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\x00\x00\x80\x3f' > escape.safetensors
"$mnemo" inspect escape.safetensors > escape.txt 2>&1
check "inspect shows control bytes escaped" grep -qF 'metadata note = \x1b[31mred\x07 \x9b2J' escape.txt
check "inspect escapes tensor names" grep -qF 'w\x1b]0;t' escape.txt
check "inspect prints no control byte" sh -c "! LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]' escape.txt"
expect 0 "^.{40}" -- "$mnemo" sample --ckpt good.safetensors --prompt "The " -n 40 --seed 3
expect 0 "^.{20}" -- "$mnemo" sample --ckpt good.safetensors --prompt "The " -n 20 --seed 3 --threads 1
checks=$((checks + 1))
a=$("$mnemo" sample --ckpt good.safetensors -n 60 --seed 5); b=$("$mnemo" sample --ckpt good.safetensors -n 60 --seed 5)
[ "$a" = "$b" ] || fail "sampling with one seed is not repeatable"

# exact resume after SIGKILL: losses after the checkpoint equal an uninterrupted run's
"$mnemo" train "${common[@]}" --steps 40 --out full.safetensors > /dev/null 2>&1
MNEMO_KILL_AT_STEP=25 "$mnemo" train "${common[@]}" --steps 40 --out part.safetensors > /dev/null 2>&1
checks=$((checks + 1)); [ -f part.safetensors.last ] || fail "no checkpoint before the kill"
expect 0 "resuming at step 20" -- "$mnemo" train --resume part.safetensors.last --steps 40
losses() { sed -n 's/.*"step": \([0-9]*\), "epoch": [0-9]*, "train_loss": \([-0-9.e]*\), "time".*/\1 \2/p' "$1" | awk '$1 > 20' | sort -n | uniq; }
checks=$((checks + 1))
if [ "$(losses full.safetensors.metrics.jsonl)" != "$(losses part.safetensors.metrics.jsonl | awk '!seen[$1]++')" ] || \
   [ "$(losses full.safetensors.metrics.jsonl | wc -l)" != 20 ]; then
  fail "resumed losses differ from the uninterrupted run"
  diff <(losses full.safetensors.metrics.jsonl) <(losses part.safetensors.metrics.jsonl) | head -5
fi

# short runs reach stated bounds
expect 0 "" -- "$mnemo" train --model tagger --steps 300 --val-every 300 --out tagger.safetensors
expect 0 "accuracy 0\.(8[5-9]|9)" -- "$mnemo" eval --ckpt tagger.safetensors
expect 0 "accuracy 0\.(8[5-9]|9)" -- "$mnemo" eval --ckpt tagger.safetensors --threads 1
grep accuracy out.txt | head -1
expect 0 "" -- "$mnemo" train --limit 400000 --steps 250 --time 0 --val-every 250 --out kjv.safetensors
val=$(sed -n 's/.*"val_loss": \([-0-9.e]*\).*/\1/p' kjv.safetensors.metrics.jsonl | tail -1)
echo "lstm on a KJV slice: validation loss $val nats per character after 250 steps"
checks=$((checks + 1)); awk -v v="$val" 'BEGIN { exit !(v < 1.6) }' || fail "KJV validation loss $val >= 1.6"
expect 0 "" -- "$mnemo" train --model vae --epochs 1 --limit 20000 --out vae.safetensors
expect 0 "per test image" -- "$mnemo" eval --ckpt vae.safetensors
elbo=$(sed -n 's/.*ELBO) \([0-9.]*\) per.*/\1/p' out.txt)
echo "vae: test loss (negative ELBO) $elbo per image after 1 epoch of 20,000 images"
checks=$((checks + 1)); awk -v v="$elbo" 'BEGIN { exit !(v < 290) }' || fail "VAE test loss $elbo >= 290"

# a plugin op inside a model trained by mnemo train --plugin
expect 0 "validation" -- "$mnemo" train --plugin "$swish" --model mlp --activation swish.swish --epochs 2 --limit 3000 --out sw.safetensors
first=$(sed -n 's/.*"val_loss": \([-0-9.e]*\).*/\1/p' sw.safetensors.metrics.jsonl | head -1)
last=$(sed -n 's/.*"val_loss": \([-0-9.e]*\).*/\1/p' sw.safetensors.metrics.jsonl | tail -1)
echo "mlp with the swish plugin: validation loss $first -> $last"
checks=$((checks + 1)); awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "swish mlp loss did not fall"
expect 0 "swish.swish .*swish" -- "$mnemo" --plugin "$swish" ops
expect 1 "needs the op plugin \"swish\"" -- "$mnemo" eval --ckpt sw.safetensors
expect 0 "accuracy" -- "$mnemo" eval --plugin "$swish" --ckpt sw.safetensors
expect 2 "--activation" -- "$mnemo" train --model mlp --activation swish.swish --steps 1
expect 1 "plugin .*nope.so" -- "$mnemo" ops --plugin nope.so

echo "cli: $checks checks, $failures failures"
[ "$failures" = 0 ]
