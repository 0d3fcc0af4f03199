#!/usr/bin/env bash
# One ImageNet run across several nodes on a SLURM cluster: `sbatch --nodes N`, one srun task per node, each
# task one torchrun starting a process per GPU; the torchruns meet through the c10d rendezvous on the first
# node. The run always starts with --resume, and the job is requeueable: a requeued job continues from the
# run's last epoch.
#
#   NODES=4 bash command/imagenet_slurm.sh student_v0.py --dataset imagenet --data-root /data/imagenet \
#       --teacher-path torchvision:resnet34 --student-arch imagenet_resnet18
#   SBATCH_ARGS="--partition=gpu --time=48:00:00" NODES=2 bash command/imagenet_slurm.sh teacher.py ...
#   DRY_RUN=1 NODES=2 bash command/imagenet_slurm.sh teacher.py ...   # print the sbatch call and the task command
#
# Knobs: NODES (1), GPUS_PER_NODE (8: processes per node, and --gres=gpu:N unless GRES is set), GRES (GRES= for
# none, a CPU-only cluster), TASKS (torchrun agents, default NODES: one per node), PORT (29500, the rendezvous
# port on the first node), LOG_DIR (.: where slurm-imagenet-<job id>.out goes), PYTHON, SBATCH_ARGS. The
# repository and --experiments-dir must be on a file system the nodes share.
set -euo pipefail

if [[ "${1:-}" == "--task" ]]; then  # inside the job: one task = one torchrun
  shift
  head="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
  exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="$SLURM_NTASKS" \
    --nproc_per_node="${GPUS_PER_NODE:-8}" --rdzv_backend=c10d --rdzv_id="$SLURM_JOB_ID" \
    --rdzv_endpoint="$head:${PORT:-29500}" "$@" --resume
fi
if [[ "${1:-}" == "--job" ]]; then  # the batch script: one task per node (per TASKS), each killed if one fails
  shift
  exec srun --kill-on-bad-exit=1 bash command/imagenet_slurm.sh --task "$@"
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
call=(sbatch --parsable --job-name unixkd-imagenet --nodes "$nodes" --ntasks "${TASKS:-$nodes}" --requeue
      --open-mode=append --output "${LOG_DIR:-.}/slurm-imagenet-%j.out" --chdir "$PWD" ${GRES:+"--gres=$GRES"}
      "${sbatch_args[@]}" command/imagenet_slurm.sh --job "$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q' "${call[0]}"; printf ' %q' "${call[@]:1}"; echo
  echo "each task runs: $PYTHON -m torch.distributed.run --nnodes=\$SLURM_NTASKS" \
       "--nproc_per_node=$gpus --rdzv_backend=c10d --rdzv_id=\$SLURM_JOB_ID --rdzv_endpoint=<first node>:${PORT:-29500}" \
       "$* --resume"
  exit 0
fi
if ! command -v sbatch > /dev/null; then
  echo "error: sbatch not found: run this on a SLURM login node (DRY_RUN=1 shows the call it would make)" >&2
  exit 2
fi
job="$("${call[@]}")"
echo "submitted job ${job%%;*}: $((nodes * gpus)) processes; log ${LOG_DIR:-.}/slurm-imagenet-${job%%;*}.out; follow with squeue --me"
