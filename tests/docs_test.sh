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
# docs/cli.md names every variable the command reads, and the library reads none
root=$(readlink -f "$(dirname "$0")/..")
for v in $(grep -hoE '(getenv|env_on)\("[A-Z_]+"\)' "$root"/tools/*.c | sed -E 's/.*\("(.*)"\)/\1/' | sort -u); do
  grep -q "\`$v\`" "$root/docs/cli.md" || { echo "docs/cli.md: environment variable $v (read in tools/) is not listed" >&2; exit 1; }
done
if grep -rnE 'getenv *\(' "$root"/core "$root"/ops "$root"/graph "$root"/optim "$root"/models "$root"/dist; then
  echo "the library reads the environment (above); only tools/ may (docs/cli.md, Environment)" >&2
  exit 1
fi
echo "docs test: ok ($(grep -c '^| [a-z0-9_]* | [0-9n] |' "$doc") ops documented)"
