# tests/cli_lib.sh: the checks shared by the command's shell suites
# (cli_test.sh, cli_config_test.sh, cli_train_test.sh), sourced after they
# cd into their temporary folder. Each counts its checks and failures.
checks=0 failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check WHAT command...: the command must succeed
check() { checks=$((checks + 1)); local what=$1; shift; "$@" || fail "$what"; }
# expect CODE PATTERN -- command...: exit code and a stderr/stdout pattern
expect() {
  local code=$1 pattern=$2; shift 3
  checks=$((checks + 1))
  "$@" > out.txt 2> err.txt; local rc=$?
  if [ "$rc" != "$code" ]; then fail "$* -> exit $rc, expected $code ($(head -c 300 err.txt))"; return; fi
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" out.txt err.txt; then fail "$* -> output lacks /$pattern/: $(head -c 300 err.txt out.txt)"; fi
}
# init_from_is CKPT STEP: CKPT's mnemo.init_from holds the one documented set
# of keys (docs/formats.md), whichever model kind wrote it, with that step
init_from_is() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
o = json.loads(json.loads(b[8:8 + n])['__metadata__']['mnemo.init_from'])
keys = {'path', 'model', 'step', 'map', 'loaded', 'missing', 'unexpected', 'mismatched'}
sys.exit(0 if set(o) == keys and o['step'] == int(sys.argv[2]) and o['mismatched'] == 0 else print(o) or 1)
PY
}
