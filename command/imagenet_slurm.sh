#!/usr/bin/env bash
# One ImageNet run across several nodes on a SLURM cluster: `sbatch --nodes N`, one srun task per node, each
# task one torchrun starting a process per GPU; the torchruns meet through the c10d rendezvous on the first
# node. The run always starts with --resume and the job is requeueable. SLURM sends SIGUSR1 to the job's shell
# SIGNAL_SECONDS before the time limit (and, where the cluster is set up so, before a preemption); the shell
# passes it to every process, the run saves where it is, mid-epoch, and stops, and the shell requeues the
# job, which continues from there.
#
#   NODES=4 bash command/imagenet_slurm.sh student_v0.py --dataset imagenet --data-root /data/imagenet \
#       --teacher-path torchvision:resnet34 --student-arch imagenet_resnet18
#   SBATCH_ARGS="--partition=gpu --time=48:00:00" NODES=2 bash command/imagenet_slurm.sh teacher.py ...
#   DRY_RUN=1 NODES=2 bash command/imagenet_slurm.sh teacher.py ...   # print the sbatch call and the task command
#
# Knobs: NODES (1), GPUS_PER_NODE (8: processes per node, and --gres=gpu:N unless GRES is set), GRES (GRES= for
# none, a CPU-only cluster), TASKS (torchrun agents, default NODES: one per node), CPUS_PER_GPU (9: 8 loader
# workers and the training process; each task asks for GPUS_PER_NODE x CPUS_PER_GPU CPUs), MEM (0: all of each
# node's memory), EXCLUSIVE (1: whole nodes; 0 shares them), SIGNAL_SECONDS (180), PORT (the rendezvous port
# on the first node; default 20000 + job id mod 10000, so two jobs sharing a node do not collide), LOG_DIR
# (.: where slurm-imagenet-<job id>.out goes), PYTHON, SBATCH_ARGS. NCCL_* and TORCH_NCCL_* variables set
# when submitting reach every process (--export=ALL); the log lists them. The repository and
# --experiments-dir must be on a file system the nodes share.
set -euo pipefail

if [[ "${1:-}" == "--task" ]]; then  # inside the job: one task = one torchrun
  shift
  head="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
  trap '' USR1  # torchrun's agent ignores the preemption signal (it would end the agent); its workers catch it
  exec "${PYTHON:-python}" -m utils.torchrun --nnodes="$SLURM_NTASKS" \
    --nproc_per_node="${GPUS_PER_NODE:-8}" --rdzv_backend=c10d --rdzv_id="$SLURM_JOB_ID" \
    --rdzv_endpoint="$head:${PORT:-$((20000 + SLURM_JOB_ID % 10000))}" "$@" --resume
fi
if [[ "${1:-}" == "--job" ]]; then  # the batch script: one task per node (per TASKS), each killed if one fails
  shift
  # Since SLURM 22.05 srun does not take --cpus-per-task from sbatch: without this each task would get one CPU.
  export SRUN_CPUS_PER_TASK="${SLURM_CPUS_PER_TASK:-1}"
  echo "job $SLURM_JOB_ID, start $((${SLURM_RESTART_COUNT:-0} + 1)): $SLURM_NTASKS task(s) of $SRUN_CPUS_PER_TASK CPU(s)" \
       "(SLURM_JOB_CPUS_PER_NODE=$SLURM_JOB_CPUS_PER_NODE); NCCL settings: $(env | grep -E '^(TORCH_)?NCCL_' | sort | xargs)"
  preempted=0
  trap 'preempted=1; echo "preemption signal: the run saves and stops"; scancel --signal=USR1 "$SLURM_JOB_ID"' USR1
  srun --kill-on-bad-exit=1 bash command/imagenet_slurm.sh --task "$@" &
  run=$!
  status=0
  wait "$run" || status=$?
  while [[ $preempted == 1 ]] && kill -0 "$run" 2> /dev/null; do  # the trap cut the wait short
    status=0
    wait "$run" || status=$?
  done
  if [[ $preempted == 1 ]]; then
    echo "requeueing job $SLURM_JOB_ID: the run continues where it stopped"
    scontrol requeue "$SLURM_JOB_ID"
  fi
  exit "$status"
fi

cd "$(dirname "$0")/.."
if [[ $# -lt 1 || ( "$1" != teacher.py && "$1" != student_v0.py ) ]]; then
  echo "error: give the script and its flags: bash command/imagenet_slurm.sh teacher.py|student_v0.py --dataset imagenet ..." >&2
  exit 2
fi
nodes="${NODES:-1}" gpus="${GPUS_PER_NODE:-8}"
GRES="${GRES-gpu:$gpus}"
read -ra sbatch_args <<< "${SBATCH_ARGS:-}"
export PYTHON="${PYTHON:-python}" GPUS_PER_NODE="$gpus"
exclusive=()
[[ "${EXCLUSIVE:-1}" == 1 ]] && exclusive=(--exclusive)
call=(sbatch --parsable --job-name unixkd-imagenet --nodes "$nodes" --ntasks "${TASKS:-$nodes}"
      --cpus-per-task "$((gpus * ${CPUS_PER_GPU:-9}))" --mem "${MEM:-0}" "${exclusive[@]}" --export=ALL
      --signal "B:USR1@${SIGNAL_SECONDS:-180}" --requeue --open-mode=append
      --output "${LOG_DIR:-.}/slurm-imagenet-%j.out" --chdir "$PWD" ${GRES:+"--gres=$GRES"}
      "${sbatch_args[@]}" command/imagenet_slurm.sh --job "$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q' "${call[0]}"; printf ' %q' "${call[@]:1}"; echo
  echo "each task runs: $PYTHON -m utils.torchrun --nnodes=\$SLURM_NTASKS" \
       "--nproc_per_node=$gpus --rdzv_backend=c10d --rdzv_id=\$SLURM_JOB_ID --rdzv_endpoint=<first node>:${PORT:-20000 + job id % 10000}" \
       "$* --resume"
  exit 0
fi
if ! command -v sbatch > /dev/null; then
  echo "error: sbatch not found: run this on a SLURM login node (DRY_RUN=1 shows the call it would make)" >&2
  exit 2
fi
job="$("${call[@]}")"
echo "submitted job ${job%%;*}: $((${TASKS:-$nodes} * gpus)) processes; log ${LOG_DIR:-.}/slurm-imagenet-${job%%;*}.out; follow with squeue --me"
