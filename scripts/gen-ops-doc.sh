#!/usr/bin/env bash
# Regenerates docs/ops.md from the registry (`mnemo ops --markdown`).
# tests/docs_test.sh fails when the committed page and the registry differ.
set -euo pipefail
cd "$(dirname "$0")/.."
mnemo=${1:-build/mnemo}
{
cat <<'HEAD'
# Operators

Every op is one record in the registry (include/mnemo_plugin.h: `struct
mn_op_def`): name, arity, typed attribute struct with its schema, shape/dtype
inference, forward kernel, VJP builder, in-place pair, flags, cost. The table
below is generated from the registry by `scripts/gen-ops-doc.sh` (`mnemo ops
--markdown`); the test suite fails if it drifts. The attributes column lists
each field of the op's attribute schema (`attr_fields`: name and type), the
names `mn_op_named` takes; `mnemo ops -v` prints the same.

Conventions: names, arguments, defaults and reductions follow PyTorch's
function of the same name (torch / torch.nn.functional). Broadcasting is
NumPy's. Flags (only those the compiler reads): `nograd` ops stop
gradients; `composite` ops are built from other ops by the registry record's
`compose` function, so their gradient comes from their parts; `random` ops
draw from the counter-based RNG keyed by the graph seed, the run step, the
op's stream and the element (never merged as common subexpressions, never
fused). Compiler hints (views, pointwise forms for fusion, in-place concat
pieces) are in the record's `traits` (docs/plugins.md).

Builders with several results are not ops: `mn_split` (sizes along an axis)
and `mn_chunk` (torch.chunk) return slices. `mn_sum_to` (the inverse of
broadcasting) is a `sum` + `reshape`.

HEAD
"$mnemo" ops --markdown
} > docs/ops.md
echo "docs/ops.md: $(grep -c '^| [a-z0-9_]* | [0-9n] |' docs/ops.md) ops"
