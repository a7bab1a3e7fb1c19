#!/usr/bin/env bash
# ONNX export checked by ONNX itself (docs/onnx.md, Exporting): every
# `mnemo train` model kind is exported (`mnemo export`), re-imported by
# mnemo, and passed through python3-onnx's
# onnx.checker.check_model(full_check=True) and strict shape inference,
# whose inferred output shape must equal the declared one.
#   onnx_checker_test.sh MNEMO PYTHON     (PYTHON: an interpreter with onnx)
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
python=$2
tmp=$(mktemp -d /tmp/mnemo-onnx-checker-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

for m in mlp lstm gru rnn transformer tagger; do
  expect 0 "wrote $m.onnx: $m model" -- "$mnemo" export --model "$m" --batch 2 --onnx "$m.onnx"
  expect 0 'output ' -- "$mnemo" import "$m.onnx"
  expect 0 "$m.onnx: checker ok" -- "$python" - "$m.onnx" <<'PY'
import sys
import onnx
from onnx import checker, shape_inference
path = sys.argv[1]
m = onnx.load(path)
checker.check_model(m, full_check=True)
inferred = shape_inference.infer_shapes(m, strict_mode=True)
declared = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
for o in inferred.graph.output:
    dims = [d.dim_value for d in o.type.tensor_type.shape.dim]
    if dims != declared[o.name]:
        sys.exit(f"{path}: output {o.name}: inferred {dims}, declared {declared[o.name]}")
print(f"{path}: checker ok, {len(m.graph.node)} nodes, {len(m.graph.initializer)} initializers")
PY
done
# the checker does reject a broken model (an input no node produces): the check above can fail
"$mnemo" export --model mlp --batch 2 --onnx bad.onnx > /dev/null
"$python" -c "
import onnx, sys
m = onnx.load('bad.onnx'); m.graph.node[0].input[0] = 'nowhere'; onnx.save(m, 'bad.onnx')"
expect 1 'nowhere' -- "$python" -c "import onnx; onnx.checker.check_model(onnx.load('bad.onnx'), full_check=True)"

echo "onnx_checker: $checks checks, $failures failures"
[ "$failures" = 0 ]
