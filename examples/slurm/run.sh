#!/usr/bin/env bash
# The driver: K VGGRPO iterations as Slurm jobs. Per iteration, one array task per shard for
# sample, decode-geometry, score and grpo-step --grads-only (task k of each waits only for task k
# of the one before: --dependency=aftercorr), then grpo-step --apply as one job after all
# gradient tasks. Rerunning the driver resumes: tasks whose outputs exist and verify exit at
# once; an iteration whose tasks failed (or were cancelled) is resubmitted up to MAX_RETRIES
# times. Settings: settings.sh (each one may be set in the environment).
#
#   RUN=/scratch/me/run1 CONFIG=exp.yaml PROMPTS=prompts.txt K=30 examples/slurm/run.sh
set -euo pipefail
SLURM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SLURM_DIR
# shellcheck source=settings.sh
source "$SLURM_DIR/settings.sh"
export ROOT RUN CONFIG PROMPTS PER_SHARD K SEED CPUS_PER_TASK SETUP VGGRPO VGGRPO_FLAGS

prompt_count=$(grep -cvE '^[[:space:]]*(#|$)' "$PROMPTS" || true)
if [ "$prompt_count" -eq 0 ]; then echo "run.sh: $PROMPTS: no prompts" >&2; exit 2; fi
SHARDS=$(((prompt_count + PER_SHARD - 1) / PER_SHARD))
export SHARDS
mkdir -p "$RUN/logs"

sbatch_common=(--parsable --export=ALL --cpus-per-task="$CPUS_PER_TASK" --kill-on-invalid-dep=yes
  --output="$RUN/logs/%x-%A_%a.out")
[ -n "$PARTITION" ] && sbatch_common+=(--partition="$PARTITION")
[ "$GPUS_PER_TASK" != 0 ] && sbatch_common+=(--gres="gpu:$GPUS_PER_TASK")
[ -n "$TIME_LIMIT" ] && sbatch_common+=(--time="$TIME_LIMIT")
# shellcheck disable=SC2206
[ -n "$SBATCH_FLAGS" ] && sbatch_common+=($SBATCH_FLAGS)

submit() { sbatch "${sbatch_common[@]}" "$@"; }

policy_done() {
  [ -s "$1/policy/state.json" ] && $VGGRPO inspect --verify "$1/policy" >/dev/null 2>&1
}

# Submit one iteration's chain; prints the job ids.
submit_iteration() {
  local last=$((SHARDS - 1)) s d c g a
  s=$(submit --array="0-$last" "$SLURM_DIR/sample.sbatch")
  d=$(submit --array="0-$last" --dependency="aftercorr:$s" "$SLURM_DIR/decode-geometry.sbatch")
  c=$(submit --array="0-$last" --dependency="aftercorr:$d" "$SLURM_DIR/score.sbatch")
  g=$(submit --array="0-$last" --dependency="aftercorr:$c" "$SLURM_DIR/grads.sbatch")
  a=$(submit --dependency="afterok:$g" --output="$RUN/logs/%x-%j.out" "$SLURM_DIR/apply.sbatch")
  echo "$s,$d,$c,$g,$a"
}

# Wait until none of the jobs is pending or running; reports the most tasks seen running at once.
wait_jobs() {
  local most=0 n
  while true; do
    n=$(squeue -h -j "$1" -t RUNNING 2>/dev/null | wc -l)
    [ "$n" -gt "$most" ] && most=$n
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && break
    sleep 1
  done
  echo "run.sh: jobs $1 ended; at most $most tasks ran at once" >&2
}

for ((i = 0; i < K; i++)); do
  ITER=$i
  ITER_DIR=$RUN/iter-$(printf %04d "$i")
  export ITER ITER_DIR
  if policy_done "$ITER_DIR"; then
    echo "run.sh: iteration $i done, skipped" >&2
    continue
  fi
  for ((attempt = 0; ; attempt++)); do
    jobs=$(submit_iteration)
    echo "run.sh: iteration $i (attempt $attempt): jobs $jobs, $SHARDS shards" >&2
    echo "$jobs" > "$RUN/logs/iter-$(printf %04d "$i").jobs"
    wait_jobs "$jobs"
    if policy_done "$ITER_DIR"; then break; fi
    if [ "$attempt" -ge "$MAX_RETRIES" ]; then
      echo "run.sh: iteration $i failed after $((attempt + 1)) attempts; logs in $RUN/logs (rerun to resume)" >&2
      exit 1
    fi
    echo "run.sh: iteration $i incomplete; resubmitting (finished tasks are skipped)" >&2
  done
done
echo "$RUN/iter-$(printf %04d $((K - 1)))/policy"
