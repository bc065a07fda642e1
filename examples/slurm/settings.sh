# Settings of a Slurm run of VGGRPO. Every variable may be set in the environment instead;
# the driver (run.sh) exports them to the job scripts.
SLURM_DIR=${SLURM_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
ROOT=${ROOT:-$(cd "$SLURM_DIR/../.." && pwd)}
RUN=${RUN:-$ROOT/runs/slurm}                       # run folder, on a filesystem every node sees
CONFIG=${CONFIG:-$ROOT/examples/toy/config.yaml}    # experiment config
PROMPTS=${PROMPTS:-$ROOT/examples/toy/prompts.txt}  # one prompt per line
PER_SHARD=${PER_SHARD:-2}   # groups per shard = sampler.per_shard (one array task per shard)
K=${K:-2}                   # iterations
SEED=${SEED:-0}             # iteration i samples and picks its trained steps with SEED + i
PARTITION=${PARTITION:-}    # sbatch --partition (empty: the cluster's default)
GPUS_PER_TASK=${GPUS_PER_TASK:-0}   # sbatch --gres=gpu:N for every task (0: CPU only)
CPUS_PER_TASK=${CPUS_PER_TASK:-1}   # sbatch --cpus-per-task; also vggrpo --threads
TIME_LIMIT=${TIME_LIMIT:-}  # sbatch --time (empty: the partition's default)
# One line run at the start of every task: a module load, a venv, or a container wrapper, e.g.
#   SETUP='module load nodejs/20 cuda/12.4'
SETUP=${SETUP:-}
VGGRPO=${VGGRPO:-node $ROOT/bin/run.js}   # or e.g. 'apptainer exec vggrpo.sif vggrpo'
VGGRPO_FLAGS=${VGGRPO_FLAGS:-}            # e.g. '--device cuda'
MAX_RETRIES=${MAX_RETRIES:-2}   # resubmissions of an iteration whose tasks failed
SBATCH_FLAGS=${SBATCH_FLAGS:-}  # anything else for every sbatch (account, qos, …)
