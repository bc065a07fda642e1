# Shared by the job scripts: the task's shard, the vggrpo command, and the skip of a task
# whose output already exists and verifies (its lineage hashes match: `vggrpo inspect --verify`).
set -euo pipefail
# shellcheck source=settings.sh
source "$SLURM_DIR/settings.sh"
if [ -n "$SETUP" ]; then eval "$SETUP"; fi

shard_name() { printf 'shard-%04d.safetensors' "$1"; }

vg() {
  # shellcheck disable=SC2086
  $VGGRPO "$@" $VGGRPO_FLAGS --threads "$CPUS_PER_TASK"
}

# Exit 0 now when $1 exists and verifies: a rerun of the driver redoes only what is missing.
skip_if_done() {
  if [ -e "$1" ] && $VGGRPO inspect --verify "$1" --allow-root "$RUN" --allow-root "$(dirname "$PROMPTS")" >/dev/null 2>&1; then
    echo "skip: $1 exists and verifies" >&2
    exit 0
  fi
}

policy_flag() {
  if [ "$ITER" -gt 0 ]; then printf -- '--policy %s' "$RUN/iter-$(printf %04d $((ITER - 1)))/policy"; fi
}
