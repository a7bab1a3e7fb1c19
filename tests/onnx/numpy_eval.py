#!/usr/bin/python3
"""Runs an ONNX model by ONNX's operator definitions, written out in numpy,
for the ops mnemo's exporter writes in tests/test_onnx.c (Debian 12's
python3-onnx 1.12 has no onnx.reference and onnxruntime is not packaged;
python3-onnx reads and checks the file here). An op it does not define
is an error, never skipped.

    numpy_eval.py MODEL X.f32 WANT.f32

checks the model (onnx.checker, full_check), feeds X (raw little-endian
float32) to its one graph input and compares its first output with WANT
(mnemo's output, raw float32): exit 0 when every value agrees within 1e-4
relative (absolute below 1e-2), else exit 1 naming the first value that
differs (a NaN never agrees)."""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

ELEM = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_}


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def softmax(node, x, log):
    # Softmax-13: exp(x - max) / sum over `axis`; a row of -inf is NaN (-inf - -inf)
    axis = attr(node, "axis", -1)
    z = x - np.max(x, axis=axis, keepdims=True)
    s = np.sum(np.exp(z), axis=axis, keepdims=True)
    return z - np.log(s) if log else np.exp(z) / s


def reshape(node, x, shape):
    # Reshape-14: 0 copies the input's dim (allowzero 0), -1 is inferred
    dims = [x.shape[i] if d == 0 and not attr(node, "allowzero", 0) else int(d) for i, d in enumerate(shape)]
    return x.reshape(dims)


def slice_(node, x, starts, ends, axes=None, steps=None):
    # Slice-13: per axis, starts/ends clamped as Python slices clamp
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, a, k in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(k))
    return x[tuple(index)]


def reduce_max(node, x):
    # ReduceMax-13: axes attribute (all when absent), keepdims default 1
    axes = attr(node, "axes")
    return np.max(x, axis=None if axes is None else tuple(axes), keepdims=bool(attr(node, "keepdims", 1)))


OPS = {
    "Add": lambda n, a, b: a + b,
    "Sub": lambda n, a, b: a - b,
    "Mul": lambda n, a, b: a * b,
    "Div": lambda n, a, b: a / b,
    "MatMul": lambda n, a, b: np.matmul(a, b),
    "Transpose": lambda n, x: np.transpose(x, attr(n, "perm")),
    "Reshape": reshape,
    "Slice": slice_,
    "Cast": lambda n, x: x.astype(ELEM[attr(n, "to")]),
    "Equal": lambda n, a, b: a == b,
    "Where": lambda n, c, a, b: np.where(c, a, b),
    "ReduceMax": reduce_max,
    "Softmax": lambda n, x: softmax(n, x, False),
    "LogSoftmax": lambda n, x: softmax(n, x, True),
    "Identity": lambda n, x: x,
    "Constant": lambda n: numpy_helper.to_array(attr(n, "value")),
}


def run(model, x):
    vals = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in vals]
    if len(inputs) != 1:
        sys.exit(f"numpy_eval: the model has {len(inputs)} graph inputs; this runner feeds one")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    vals[inputs[0].name] = x.reshape(dims)
    for k, n in enumerate(model.graph.node):
        if n.op_type not in OPS:
            sys.exit(f"numpy_eval: node {k} \"{n.name}\": op {n.op_type} is not defined here")
        with np.errstate(all="ignore"):
            y = OPS[n.op_type](n, *[vals[i] if i else None for i in n.input])
        vals[n.output[0]] = np.asarray(y)
    return vals[model.graph.output[0].name]


def main():
    path, xs, wants = sys.argv[1:4]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    got = run(model, np.fromfile(xs, dtype="<f4"))
    want = np.fromfile(wants, dtype="<f4").reshape(got.shape)
    bad = ~(np.abs(got - want) <= 1e-4 * np.maximum(np.abs(want), 1e-2))
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        sys.exit(f"numpy_eval: {path}: output{list(i)} = {got[i]}, mnemo {want[i]} ({bad.sum()} of {bad.size} differ)")
    print(f"numpy_eval: {path}: {got.size} values agree with mnemo's")


if __name__ == "__main__":
    main()
