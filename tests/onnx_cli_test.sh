#!/usr/bin/env bash
# mnemo import / mnemo export (docs/onnx.md): a PyTorch-exported model
# imports and its initializers are saved under their names; a bad model
# exits 1 naming the node and op; a dynamic dim is fixed by --shape; a
# truncated file is malformed; an exported mnemo model imports back.
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
expect 0 'mlp model, 203530 parameters' -- "$mnemo" export --model mlp --batch 2 -o mlp.onnx
expect 0 '4 parameters \(203530 elements\)' -- "$mnemo" import mlp.onnx
expect 2 'no logits' -- "$mnemo" export --model vae -o vae.onnx
check "nothing written for a refused export" test ! -e vae.onnx

echo "onnx_cli: $checks checks, $failures failures"
[ "$failures" = 0 ]
