#!/usr/bin/env bash
# Dumps the SWORD Bible modules used for translation with `mod2imp` (package
# libsword-utils) into DIR (default $MNEMO_DATA/parallel or ~/.cache/mnemo/parallel):
#   kjv.imp (engKJV2006eb, King James), rv1909.imp (spaRV1909eb, Reina-Valera
#   1909), web.imp (engWEB2015eb, World English Bible).
# Each dump is lines `$$$Book C:V` followed by the verse in OSIS markup; the
# reader in tools/parallel.c strips it. Re-running rewrites the files
# atomically (a failed dump never leaves a partial file behind).
set -euo pipefail

dir=${1:-${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel}
command -v mod2imp >/dev/null 2>&1 || { echo "make-parallel: mod2imp not found (run scripts/setup.sh: libsword-utils)" >&2; exit 1; }
mkdir -p "$dir"
for pair in kjv:engKJV2006eb rv1909:spaRV1909eb web:engWEB2015eb; do
  name=${pair%%:*}
  module=${pair#*:}
  tmp="$dir/.$name.imp.$$"
  if ! mod2imp "$module" > "$tmp" 2>/dev/null || ! head -c 3 "$tmp" | grep -q '\$\$\$'; then
    rm -f "$tmp"
    echo "make-parallel: mod2imp $module failed (is sword-text-* installed? run scripts/setup.sh)" >&2
    exit 1
  fi
  mv "$tmp" "$dir/$name.imp"
  echo "$dir/$name.imp: $(grep -c '^\$\$\$' "$dir/$name.imp") keys"
done
