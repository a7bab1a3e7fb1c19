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
echo "docs test: ok ($(grep -c '^| [a-z0-9_]* | [0-9n] |' "$doc") ops documented)"
