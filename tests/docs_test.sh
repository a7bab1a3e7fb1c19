#!/usr/bin/env bash
# docs/ops.md must list exactly what the registry holds (regenerate with
# scripts/gen-ops-doc.sh).
set -euo pipefail
mnemo=$1 doc=$2
if ! diff <(grep '^|' "$doc") <("$mnemo" ops --markdown) >/dev/null; then
  echo "docs/ops.md differs from the registry; run scripts/gen-ops-doc.sh" >&2
  diff <(grep '^|' "$doc") <("$mnemo" ops --markdown) >&2 || true
  exit 1
fi
# the attributes column comes from each op's schema: slice lists its four fields
row=$(grep '^| slice |' "$doc" || true)
if ! grep -qF '| axis int, start int64, stop int64, step int64 |' <<< "$row"; then
  echo "docs/ops.md: the slice row lacks its attribute fields (axis, start, stop, step): $row" >&2
  exit 1
fi
echo "docs test: ok ($(grep -c '^| [a-z0-9_]* | [0-9n] |' "$doc") ops documented)"
