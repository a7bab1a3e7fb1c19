#!/usr/bin/env bash
# Rewrites the flag table of docs/cli.md (between "<!-- train --help -->" and
# "<!-- end -->") from `mnemo train --help`, the block tests/cli_use_test.sh
# keeps equal to it. Usage: scripts/gen-cli-doc.sh [path/to/mnemo]
set -euo pipefail
cd "$(dirname "$0")/.."
mnemo=${1:-build/mnemo}
table=$("$mnemo" train --help | awk '/^  --model KIND/ { p = 1 } /^  --activation takes/ { p = 0 } p')
TABLE="$table" python3 - docs/cli.md <<'PY'
import os, sys
p = sys.argv[1]
s = open(p).read()
a = s.index("<!-- train --help -->\n```\n") + len("<!-- train --help -->\n```\n")
e = s.index("```\n<!-- end -->", a)
open(p, "w").write(s[:a] + os.environ["TABLE"] + "\n" + s[e:])
PY
