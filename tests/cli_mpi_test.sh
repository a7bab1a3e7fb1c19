#!/usr/bin/env bash
# mnemo train under mpirun (issue 18): 2 ranks with --batch B (B/2 each)
# end where one process with --batch B ends (SGD, 20 steps, 1e-5
# relative); rank 0 alone writes; --resume continues exactly; the same run
# over TCP (--mca btl self,tcp) gives the same bytes; a batch that does not
# split over the ranks is refused; a rank that cannot read its data, or
# dies, ends every rank within seconds. Args: mnemo, mpirun.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
mpirun=$2
tmp=$(mktemp -d /tmp/mnemo-cli-mpi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
run() { timeout 120 "$mpirun" --bind-to none "$@"; }

# maxrel A B: the largest relative difference (max |a - b| / max |b|) over the tensors of two checkpoints
maxrel() {
  python3 - "$1" "$2" <<'PY'
import array, json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        a = array.array('f'); a.frombytes(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]); out[k] = a
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
worst = 0.0
for k in a:
    mag = max(abs(x) for x in b[k]) or 1.0
    worst = max(worst, max(abs(x - y) for x, y in zip(a[k], b[k])) / mag)
print('%.3g' % worst)
PY
}
small() { awk -v x="$1" -v t="$2" 'BEGIN { exit !(x + 0 <= t + 0) }'; }

text=/usr/share/games/fortunes/fortunes
common=(--data "$text" --hidden 16 --embed 8 --seq 16 --val-every 10 --val-batches 2 --threads 1 --optim sgd --lr 0.5)

# 1. 2 ranks x batch 4 against 1 process x batch 8, 20 steps
"$mnemo" train "${common[@]}" --batch 8 --steps 20 --out one.st > one.txt 2>&1 || fail "one process: $(tail -3 one.txt)"
expect 0 "data parallel: 2 ranks" -- run -np 2 "$mnemo" train "${common[@]}" --batch 8 --steps 20 --out two.st
rel=$(maxrel two.st one.st)
echo "2 ranks vs 1 process, 20 SGD steps: max relative difference $rel"
check "2 ranks within 1e-5 of one process (got $rel)" small "$rel" 1e-5
# validation is sharded over the ranks and its sums reduced: the same figures as one process
v1=$(grep -o '"val_loss": [0-9.e+-]*' one.st.metrics.jsonl | tail -1 | cut -d' ' -f2)
v2=$(grep -o '"val_loss": [0-9.e+-]*' two.st.metrics.jsonl | tail -1 | cut -d' ' -f2)
vrel=$(awk -v a="$v1" -v b="$v2" 'BEGIN { d = a - b; if (d < 0) d = -d; print (a > 0 ? d / a : 1) }')
check "2 ranks' sharded validation loss $v2 equals one process's $v1 (relative $vrel)" small "$vrel" 1e-5
# rank 0 alone writes and prints (rank 1 is told other paths: it must not use them)
check "one summary line" test "$(grep -c 'best validation loss' out.txt)" = 1
expect 0 "data parallel: 2 ranks" -- run -np 1 "$mnemo" train "${common[@]}" --batch 8 --steps 2 --out w0.st : \
  -np 1 "$mnemo" train "${common[@]}" --batch 8 --steps 2 --out w1.st --metrics w1.jsonl
check "rank 0 writes" test -s w0.st.last -a -s w0.st.metrics.jsonl
check "rank 1 writes nothing" test "$(ls w1* 2>/dev/null)" = ""

# 2. resume for the same ranks: 10 + 10 steps = 20 steps, bit for bit
run -np 2 "$mnemo" train "${common[@]}" --batch 8 --steps 10 --out half.st > /dev/null 2>&1 || fail "10 steps"
expect 0 "resuming at step 10" -- run -np 2 "$mnemo" train --resume half.st.last --steps 20
check "resumed run ends where the straight one does" test "$(maxrel half.st.last two.st.last)" = 0

# 3. the network path: TCP on the loopback gives the same bytes
expect 0 "data parallel: 2 ranks" -- run -np 2 --mca btl self,tcp "$mnemo" train "${common[@]}" --batch 8 --steps 20 --out tcp.st
check "TCP equals shared memory" test "$(maxrel tcp.st.last two.st.last)" = 0

# 4. 3 ranks: the global batch must be a multiple of the ranks
expect 2 "--batch 8 does not split evenly over 3 ranks.*\(6 or 9 here\)" -- run -np 3 "$mnemo" train "${common[@]}" --batch 8 --steps 2 --out three.st
check "nothing written when refused" test ! -e three.st.last
expect 0 "data parallel: 3 ranks" -- run -np 3 "$mnemo" train "${common[@]}" --batch 9 --steps 4 --val-every 2 --out three.st

# 5. a rank that cannot read its data: every rank exits, naming it
t0=$(date +%s)
expect 1 "rank 1 failed" -- run -np 1 "$mnemo" train "${common[@]}" --batch 8 --steps 5 --out bad.st : \
  -np 1 "$mnemo" train "${common[@]}" --data /nonexistent/corpus.txt --batch 8 --steps 5 --out bad.st
check "the rank's own message reaches the user" grep -q "nonexistent/corpus.txt" err.txt
check "nothing written by a failed start" test ! -e bad.st.last
# 6. a rank killed at step 3: mpirun ends the others (no hang)
checks=$((checks + 1))
run -np 1 "$mnemo" train "${common[@]}" --batch 8 --steps 50 --out dead.st : \
  -np 1 env MNEMO_KILL_AT_STEP=3 "$mnemo" train "${common[@]}" --batch 8 --steps 50 --out dead.st > out.txt 2> err.txt
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "a killed rank: mpirun exit $rc (124: timed out)"
check "a killed rank ends the job with an error" test "$(tail -c 2000 err.txt out.txt | grep -ci 'signal 9\|killed\|exited on signal')" -ge 1
check "failures end within seconds, not a timeout" test $(( $(date +%s) - t0 )) -lt 60

echo "$checks checks, $failures failures"
[ "$failures" = 0 ]
