#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: installs what is
# missing (apt-get, non-interactive), configures, builds, runs every suite
# and prints Check's summary line of each. Exits non-zero on any failure.
#   scripts/test.sh           release build in build/
#   scripts/test.sh --asan    ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "--asan" ]; then
  export MNEMO_BUILD=build-asan
  scripts/build.sh -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  scripts/build.sh
fi
build=${MNEMO_BUILD:-build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
meson test -C "$build" --print-errorlogs -v --num-processes 1 >"$log" 2>&1 || status=$?
grep -E '^Running suite|^[0-9]+%: Checks|install test|docs test|^mlp:|^cli:|^cli_config:|^FAIL|^plugin |^mlp with^lstm on|^vae:|^accuracy|^mlp |^lstm |^quadratic |^char LM|^vae|^rnn |^gru |^bilstm|^transformer |^lstm_|^ *[0-9]+/[0-9]+ .*(OK|FAIL|TIMEOUT|ERROR)|^(Ok|Fail|Expected|Unexpected|Skipped|Timeout):' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "---- failures ----"
  grep -E ':F:|:E:|FAIL|ERROR|Sanitizer|runtime error' "$log" | head -n 60 || true
  echo "test suite FAILED (full log: meson-logs/testlog.txt in $build)"
fi
exit "$status"
