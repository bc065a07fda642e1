#!/usr/bin/env bash
# The whole check of the Slurm scripts on a local single-node cluster (local-cluster.sh):
# 1. two toy iterations through sbatch give the policy the single-process Makefile gives with the
#    same seeds (every adapter tensor within 1e-6);
# 2. a run in which one array task is killed mid-run (scancel) fails, and rerunning the driver
#    resumes and ends at the same policy.
# Exits 0 only when both hold. Prints the wall times, the cluster (sinfo) and the most tasks
# that ran at once. Needs Debian's slurmctld, slurmd, slurm-client and munge.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/vggrpo-slurm-test.XXXXXX)}
export STATE=${STATE:-$WORK/cluster}
"$HERE/local-cluster.sh" start >/dev/null
trap '"$HERE/local-cluster.sh" stop' EXIT
export SLURM_CONF=$STATE/slurm.conf
echo "cluster:" >&2
sinfo >&2

# A small toy setting: 4 prompts, one group of 2 per shard, 4 steps.
cat > "$WORK/tiny.yaml" <<'YAML'
sampler:
  steps: 4
  sde_window: "0:2"
  group_size: 2
  per_shard: 1
lora:
  rank: 2
  alpha: 4
  targets: ["*attn.q.weight"]
grpo:
  lr: 0.004
YAML
printf 'orbit around the red box\npan across the room\ndolly toward the blue sphere\narc over the desk\n' > "$WORK/p.txt"
export CONFIG=$WORK/tiny.yaml PROMPTS=$WORK/p.txt PER_SHARD=1 K=2 SEED=0

now() { date +%s.%N; }
t0=$(now)
make -s -C "$ROOT/examples/toy" train K=2 SEED=0 RUN="$WORK/make" CONFIG="$CONFIG" PROMPTS="$PROMPTS" 2>"$WORK/make.log"
t1=$(now)
RUN=$WORK/slurm "$HERE/run.sh" >/dev/null 2>"$WORK/slurm.log"
t2=$(now)
cat "$WORK/slurm.log" >&2
echo "wall time: single process (make) $(echo "$t1 - $t0" | bc) s, Slurm $(echo "$t2 - $t1" | bc) s" >&2
node "$HERE/compare-policies.mjs" "$WORK/make/iter-0001/policy" "$WORK/slurm/iter-0001/policy"

# The reduce refuses an incomplete set of gradient shards, naming the missing one.
set +e
partial=$(node "$ROOT/bin/run.js" grpo-step --apply "$WORK"/slurm/iter-0000/gradients/shard-000[013].grads.safetensors \
  --out "$WORK/partial-policy" 2>&1)
code=$?
set -e
echo "$partial" >&2
[ "$code" -eq 2 ] && [[ "$partial" == *"missing shard 2 of 4"* ]] || { echo "test-local: --apply accepted an incomplete set" >&2; exit 1; }

# Kill one array task mid-run: the driver (no retries) fails; a rerun resumes and agrees.
RUN=$WORK/killed MAX_RETRIES=0 "$HERE/run.sh" >/dev/null 2>"$WORK/killed.log" &
driver=$!
victim=
for _ in $(seq 1 600); do
  victim=$(squeue -h -n vggrpo-sample -t RUNNING -o '%i' 2>/dev/null | head -n 1)
  [ -n "$victim" ] && break
  sleep 0.05
done
[ -n "$victim" ] || { echo "test-local: no running sample task to kill" >&2; exit 1; }
scancel "$victim"
echo "killed array task $victim" >&2
if wait "$driver"; then
  echo "test-local: the driver succeeded although task $victim was killed" >&2
  exit 1
fi
cat "$WORK/killed.log" >&2
RUN=$WORK/killed "$HERE/run.sh" >/dev/null 2>"$WORK/resumed.log"
cat "$WORK/resumed.log" >&2
grep -q 'skip:' "$WORK"/killed/logs/*.out || { echo "test-local: the rerun redid finished tasks" >&2; exit 1; }
node "$HERE/compare-policies.mjs" "$WORK/make/iter-0001/policy" "$WORK/killed/iter-0001/policy"
echo "test-local: ok" >&2
