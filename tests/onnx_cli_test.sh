#!/usr/bin/env bash
# mnemo import / mnemo export (docs/onnx.md): a PyTorch-exported model
# imports and its initializers are saved under their names; a bad model
# exits 1 naming the node and op; a dynamic dim is fixed by --shape; a
# truncated file is malformed; an exported mnemo model imports back;
# train --onnx trains an exported PyTorch model on a reader's data (the
# loss falls, a resumed run continues exactly, eval reads its checkpoint)
# and graph --onnx draws it.
#   onnx_cli_test.sh MNEMO FIXTURES DOCS/onnx.md
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
fix=$(readlink -f "$2")/onnx
docs=$(readlink -f "$3")
tmp=$(mktemp -d /tmp/mnemo-onnx-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

expect 0 'input  x f32 \[3,8\]' -- "$mnemo" import "$fix/mlp_ln.onnx" -o w.safetensors --dot g.dot
check "import counts the parameters" grep -q "6 parameters (244 elements)" out.txt
check "import prints the output" grep -q "output y f32 \[3,4\]" out.txt
expect 0 'fc1\.weight' -- "$mnemo" inspect w.safetensors
check "the forward graph is drawn" grep -q digraph g.dot
expect 1 'node 1 "warp1" \(GridSample\): op GridSample is not supported' -- "$mnemo" import "$fix/bad_op.onnx"
expect 1 'dim 0 is dynamic \("batch"\)' -- "$mnemo" import "$fix/bad_dynamic.onnx"
expect 0 'input  x f32 \[5,4\]' -- "$mnemo" import "$fix/bad_dynamic.onnx" --shape x=5x4
expect 2 'expected NAME=D1xD2' -- "$mnemo" import "$fix/bad_dynamic.onnx" --shape x=5xq
head -c 100 "$fix/lstm_lm.onnx" > cut.onnx
expect 1 'malformed' -- "$mnemo" import cut.onnx
expect 0 '\| Gemm \| matmul, scale, add \|' -- "$mnemo" import --ops
check "docs/onnx.md holds every row the command prints" test -z "$(grep -vxFf "$docs" out.txt)"
check "docs/onnx.md has no row the command lacks" test "$(grep -c '^| [A-Z]' "$docs")" = "$(grep -c '^| [A-Z]' out.txt)"
# the mapping table is the only place that reads an ONNX op's name: a converter outside onnx/table.c
# gets one row (its function), never the name to switch on
src=$(dirname "$(dirname "$docs")")/onnx
check "no converter outside onnx/table.c reads the op name ($(grep -l 'entry->onnx' "$src"/*.c | grep -v '/table\.c$' | tr '\n' ' '))" \
  test -z "$(grep -l 'entry->onnx' "$src"/*.c | grep -v '/table\.c$')"
expect 0 'mlp model, 203530 parameters' -- "$mnemo" export --model mlp --batch 2 -o mlp.onnx
expect 0 '4 parameters \(203530 elements\)' -- "$mnemo" import mlp.onnx
expect 0 'wrote gru.onnx: gru model' -- "$mnemo" export --model gru --batch 2 --onnx gru.onnx
expect 0 'input  x i32 \[64,2\]' -- "$mnemo" import gru.onnx
expect 2 'no logits' -- "$mnemo" export --model vae -o vae.onnx
check "nothing written for a refused export" test ! -e vae.onnx

# train --onnx: a character LSTM exported by PyTorch (input "tokens", dynamic seq and batch) on a
# tiny text with the lstm reader; 40 steps straight vs 20 + a resume to 40: the same step-40 loss.
awk 'BEGIN { srand(3); for (i = 0; i < 4000; i++) printf "%s", substr("abcab cab\n", int(rand() * 10) + 1, 1) }' > t.txt
lm() { "$mnemo" train --model lstm --onnx "$fix/char_lm.onnx" --data t.txt --seq 16 --batch 8 --threads 1 --val-every 20 "$@"; }
loss_at() { awk -v s="$2" -F'"train_loss": ' '$0 ~ "\"step\": " s "," { split($2, a, ","); print a[1] }' "$1"; }
mean_loss() { awk -F'"train_loss": ' -v lo="$2" -v hi="$3" '/train_loss/ { n++; if (n >= lo && n <= hi) { split($2, a, ","); s += a[1]; k++ } } END { printf "%.4f", s / k }' "$1"; }
expect 0 'stopped: --steps 40 reached' -- lm --steps 40 --out a.st
first=$(mean_loss a.st.metrics.jsonl 1 5) last=$(mean_loss a.st.metrics.jsonl 36 40)
check "train --onnx: the loss falls ($first -> $last)" awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.8 * f) }'
expect 0 'stopped: --steps 20 reached' -- lm --steps 20 --out b.st
expect 0 'stopped: --steps 40 reached' -- "$mnemo" train --resume b.st.last --steps 40
check "a resumed --onnx run continues exactly (step 40: $(loss_at a.st.metrics.jsonl 40) vs $(loss_at b.st.metrics.jsonl 40))" \
  test -n "$(loss_at a.st.metrics.jsonl 40)" -a "$(loss_at a.st.metrics.jsonl 40)" = "$(loss_at b.st.metrics.jsonl 40)"
expect 0 'bits per character' -- "$mnemo" eval --ckpt a.st
expect 2 'a --onnx checkpoint cannot generate' -- "$mnemo" sample --ckpt a.st
# the image reader: a Fashion-MNIST CNN (pixels [batch, 784] reshaped inside the model; dynamic batch)
expect 0 'accuracy' -- "$mnemo" train --model mlp --onnx "$fix/fmnist_cnn.onnx" --limit 256 --batch 32 --steps 8 --val-batches 2 --threads 1 --out c.st
# refused with the reason: a reader the model does not fit, a kind without a classifier reader
expect 1 'input "tokens" is i32, --model mlp feeds float pixels' -- "$mnemo" train --model mlp --onnx "$fix/char_lm.onnx" --steps 1 --out d.st
awk 'BEGIN { for (i = 0; i < 4000; i++) printf "%c", 97 + i % 20 }' > t20.txt
expect 1 '16 classes, the data has 2[01]' -- lm --data t20.txt --steps 1 --out e.st
expect 1 'no reader for a classifier' -- "$mnemo" train --model vae --onnx "$fix/fmnist_cnn.onnx" --steps 1 --out f.st
check "no checkpoint from a refused model" test ! -e d.st -a ! -e e.st -a ! -e f.st
# graph --onnx: the training graph's figures and a drawing of the forward pass (Conv = unfold + matmul)
expect 0 'parameters 1554' -- "$mnemo" graph --model mlp --onnx "$fix/fmnist_cnn.onnx" --batch 4 --format stats
expect 0 'unfold' -- "$mnemo" graph --model mlp --onnx "$fix/fmnist_cnn.onnx" --batch 4 --forward-only

echo "onnx_cli: $checks checks, $failures failures"
[ "$failures" = 0 ]
