#!/usr/bin/env bash
# mnemo train under mpirun (issue 18): 2 ranks with --batch B (B/2 each)
# end where one process with --batch B ends (SGD, 20 steps, 1e-5
# relative); rank 0 alone writes; --resume continues exactly; the same run
# over TCP (--mca btl self,tcp), also from a hostfile on the loopback
# interface, gives the same bytes; a batch that does not
# split over the ranks is weighted by each rank's share (3 ranks, batch
# 8; the tagger's tags but padding), as one process; dropout masks differ
# between ranks; a rank that cannot read its data, or
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
# each rank's CPU per step, printed by rank 0 (the figure to compare with one process's)
check "CPU per step of both ranks" \
  grep -Eq '^data parallel: CPU per step \(steps 2\.\.20\): rank 0 [0-9.]+ ms \([0-9.]+ in the allreduces\), rank 1 [0-9.]+ ms' out.txt
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
# as between machines (docs/distributed.md): a hostfile, TCP on a named
# interface for both MPI and Open MPI's own launch messages, -x for the environment
echo "localhost slots=2" > hosts
expect 0 "data parallel: 2 ranks" -- run --hostfile hosts -np 2 --mca btl self,tcp --mca btl_tcp_if_include lo \
  --mca oob_tcp_if_include lo -x OMP_NUM_THREADS "$mnemo" train "${common[@]}" --batch 8 --steps 20 --out hosts.st
check "a hostfile over TCP on lo equals shared memory" test "$(maxrel hosts.st.last two.st.last)" = 0

# 4. 3 ranks on a batch of 8 (2 + 3 + 3 examples, each rank's gradient
# weighted by its share): the mean over the 8, as one process
expect 0 "data parallel: 3 ranks" -- run -np 3 "$mnemo" train "${common[@]}" --batch 8 --steps 20 --out three.st
rel=$(maxrel three.st one.st)
echo "3 ranks (2 + 3 + 3) vs 1 process on a batch of 8, 20 SGD steps: max relative difference $rel"
check "3 uneven ranks within 1e-5 of one process (got $rel)" small "$rel" 1e-5
t1=$(grep -o '"train_loss": [0-9.e+-]*' one.st.metrics.jsonl | tail -1 | cut -d' ' -f2)
t3=$(grep -o '"train_loss": [0-9.e+-]*' three.st.metrics.jsonl | tail -1 | cut -d' ' -f2)
check "3 ranks' training loss $t3 is the batch's, one process's $t1" small "$(awk -v a="$t1" -v b="$t3" 'BEGIN { d = a - b; print d < 0 ? -d : d }')" 1e-5
expect 2 "--batch 2 is less than the 3 ranks" -- run -np 3 "$mnemo" train "${common[@]}" --batch 2 --steps 2 --out few.st
check "nothing written when refused" test ! -e few.st.last

# 4b. the tagger's loss is a mean over the tags but padding: each rank's
# share is its tags over the batch's, so sentences of other lengths on the
# two ranks still give one process's mean
mkdir brown
for i in $(seq 10 29); do
  printf 'The/at cat/nn sat/vbd ./.\nGo/vb ./.\nA/at big/jj dog/nn ran/vbd home/nr fast/rb ./.\nThe/at man/nn saw/vbd a/at dog/nn ./.\n' > brown/ca$i
done
tag=(--model tagger --data brown --seq 8 --batch 4 --steps 10 --threads 1 --optim sgd --lr 0.5 --hidden 8 --embed 8 --val-every 5)
"$mnemo" train "${tag[@]}" --out tag1.st > tag1.txt 2>&1 || fail "tagger, one process: $(tail -3 tag1.txt)"
expect 0 "data parallel: 2 ranks" -- run -np 2 "$mnemo" train "${tag[@]}" --out tag2.st
rel=$(maxrel tag2.st tag1.st)
echo "tagger, 2 ranks vs 1 process, 10 SGD steps: max relative difference $rel"
check "tagger: 2 ranks within 1e-5 of one process (got $rel)" small "$rel" 1e-5

# 4c. dropout: each rank draws its own masks. On a text of two alternating
# letters every window is the same, so without dropout 2 ranks x 1 window
# are 1 process x 1 window bit for bit; with dropout they differ (rank 1's
# masks are not rank 0's, which are one process's)
head -c 3000 /dev/zero | tr '\0' a | sed 's/aa/ab/g' > same.txt        # abab...: every 16-letter window alike
same=(--data same.txt --hidden 16 --embed 8 --seq 16 --steps 3 --val-every 3 --threads 1 --optim sgd --lr 0.5)
"$mnemo" train "${same[@]}" --batch 1 --dropout 0 --out s1.st > /dev/null 2>&1 || fail "one window, one process"
expect 0 "" -- run -np 2 "$mnemo" train "${same[@]}" --batch 2 --dropout 0 --out s2.st
check "no dropout: 2 ranks of equal windows = 1 process (control)" test "$(maxrel s2.st s1.st)" = 0
"$mnemo" train "${same[@]}" --batch 1 --dropout 0.5 --out d1.st > /dev/null 2>&1 || fail "dropout, one process"
expect 0 "" -- run -np 2 "$mnemo" train "${same[@]}" --batch 2 --dropout 0.5 --out d2.st
check "dropout: rank 1 draws other masks than rank 0 (2 ranks differ from 1 process: $(maxrel d2.st d1.st))" test "$(maxrel d2.st d1.st)" != 0

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
