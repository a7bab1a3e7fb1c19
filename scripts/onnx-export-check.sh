#!/usr/bin/env bash
# Exports each `mnemo train` model kind as ONNX (`mnemo export`), re-imports
# it, and checks every file with python3-onnx:
# onnx.checker.check_model(full_check=True) and strict shape inference,
# whose inferred output shape must equal the declared one. The suite runs
# the same checks as the test onnx_checker (tests/onnx_checker_test.sh).
#   scripts/onnx-export-check.sh          (needs /usr/bin/python3 with onnx)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
tests/onnx_checker_test.sh build/mnemo /usr/bin/python3
