#!/usr/bin/env bash
# One ImageNet run across several nodes on a SLURM cluster: `sbatch --nodes N`, one srun task per node, each
# task one torchrun starting a process per GPU; the torchruns meet through the c10d rendezvous on the first
# node. The run always starts with --resume and the job is requeueable. SLURM sends SIGUSR1 to the job's shell
# SIGNAL_SECONDS before the time limit (and, where the cluster is set up so, before a preemption); the shell
# writes the job's stop file, which rank 0 watches (a signal to the tasks need not reach torchrun's workers,
# each in a session of its own), the run saves where it is, mid-epoch, marks the file and stops, and the shell
# requeues the job, which continues from there. A run that ended otherwise meanwhile is not requeued.
#
#   NODES=4 bash command/imagenet_slurm.sh student_v0.py --dataset imagenet --data-root /data/imagenet \
#       --teacher-path torchvision:resnet34 --student-arch imagenet_resnet18
#   SBATCH_ARGS="--partition=gpu --time=48:00:00" NODES=2 bash command/imagenet_slurm.sh teacher.py ...
#   DRY_RUN=1 NODES=2 bash command/imagenet_slurm.sh teacher.py ...   # print the sbatch call and the task command
#
# Knobs: NODES (1), GPUS_PER_NODE (8: processes per node, and --gres=gpu:N unless GRES is set), GRES (GRES= for
# none, a CPU-only cluster), TASKS (torchrun agents, default NODES: one per node; more than NODES only without
# GPUs, GRES=), CPUS_PER_GPU (CPUs each process asks for, e.g. 9: 8 loader workers and the training process;
# default with EXCLUSIVE=1: the node's own, shared between its processes; with EXCLUSIVE=0: 9), MEM (0: all of
# each node's memory), EXCLUSIVE (1: whole nodes; 0 shares them), SIGNAL_SECONDS (180), PORT (the rendezvous port
# on the first node; default 20000 + job id mod 10000, so two jobs sharing a node do not collide), LOG_DIR
# (.: where slurm-imagenet-<job id>.out, the job's stop file and its ranks' last words go), PYTHON, SBATCH_ARGS.
# Relative paths in LOG_DIR, --data-root, --experiments-dir and --teacher-path are taken from where you submit,
# and so is the default --experiments-dir, ./experiments. NCCL_* and TORCH_NCCL_* variables set when submitting
# reach every process (--export=ALL); the log lists them. The repository, --experiments-dir and LOG_DIR must be
# on a file system the nodes share.
set -euo pipefail

if [[ "${1:-}" == "--task" ]]; then  # inside the job: one task = one torchrun
  shift
  head="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
  # A USR1 sent to the whole step reaches the launchers, which pass it on: the run stops with 75 but leaves the stop
  # file unmarked, so the job is not requeued: send it to the batch shell (scancel --batch, as --signal=B:USR1 does).
  exec "${PYTHON:-python}" -m utils.torchrun --nnodes="$SLURM_NTASKS" \
    --nproc_per_node="${GPUS_PER_NODE:-8}" --rdzv_backend=c10d --rdzv_id="$SLURM_JOB_ID" \
    --rdzv_endpoint="$head:${PORT:-$((20000 + SLURM_JOB_ID % 10000))}" "$@" --resume
fi
if [[ "${1:-}" == "--job" ]]; then  # the batch script: one task per node (per TASKS), each killed if one fails
  shift
  # Since SLURM 22.05 srun does not take --cpus-per-task from sbatch: without this each task would get one CPU.
  # Whole nodes asked without a CPU count: each task takes its share of the node's CPUs (the fewest of any node).
  fewest="$(sed -E 's/\(x[0-9]+\)//g' <<< "$SLURM_JOB_CPUS_PER_NODE" | tr ',' '\n' | sort -n | head -n 1)"
  export SRUN_CPUS_PER_TASK="${SLURM_CPUS_PER_TASK:-$((fewest / ((SLURM_NTASKS + SLURM_JOB_NUM_NODES - 1) / SLURM_JOB_NUM_NODES)))}"
  export UNIXKD_STOP_FILE="${LOG_DIR:-.}/slurm-imagenet-$SLURM_JOB_ID.stop"  # rank 0 watches it (utils/process/preemption.py)
  rm -f "$UNIXKD_STOP_FILE"  # a requeued job starts without its last start's
  # Every rank's last line, on the shared file system: the first launcher to end prints the first said. A folder
  # for each start of the job: a requeued start must not read its last start's words (a node's stale view of it).
  export UNIXKD_LAST_WORDS="${LOG_DIR:-.}/slurm-imagenet-$SLURM_JOB_ID-restart${SLURM_RESTART_COUNT:-0}.words"
  rm -rf "$UNIXKD_LAST_WORDS" && mkdir -p "$UNIXKD_LAST_WORDS"
  echo "job $SLURM_JOB_ID, start $((${SLURM_RESTART_COUNT:-0} + 1)): $SLURM_NTASKS task(s) of $SRUN_CPUS_PER_TASK CPU(s)" \
       "(SLURM_JOB_CPUS_PER_NODE=$SLURM_JOB_CPUS_PER_NODE); NCCL settings: $(env | grep -E '^(TORCH_)?NCCL_' | sort | xargs)"
  # A second signal (a preemption after the time limit's notice) must not overwrite the run's "stopped" mark.
  trap 'echo "preemption signal: the run saves and stops"; [[ -e "$UNIXKD_STOP_FILE" ]] || echo stop > "$UNIXKD_STOP_FILE"' USR1
  srun --kill-on-bad-exit=1 bash command/imagenet_slurm.sh --task "$@" &
  run=$!
  status=0
  wait "$run" || status=$?
  while kill -0 "$run" 2> /dev/null; do  # the trap cut the wait short
    status=0
    wait "$run" || status=$?
  done
  if [[ "$(cat "$UNIXKD_STOP_FILE" 2> /dev/null)" == stopped ]]; then  # rank 0 saved and stopped
    echo "requeueing job $SLURM_JOB_ID: the run continues where it stopped"
    scontrol requeue "$SLURM_JOB_ID"
  elif [[ -e "$UNIXKD_STOP_FILE" ]]; then
    echo "the run ended (status $status) before it stopped on the preemption signal: not requeued"
  fi
  rm -rf "$UNIXKD_STOP_FILE" "$UNIXKD_LAST_WORDS"
  exit "$status"
fi

absolute() {  # a path given relative to where the job is submitted, as the job will see it
  case "$1" in /*) echo "$1" ;; .) echo "$PWD" ;; *) echo "$PWD/${1#./}" ;; esac
}
a_file() {  # a teacher given as a file, as the job will see it; anything else (torchvision:NAME) as given
  if [[ -e "$1" ]]; then absolute "$1"; else echo "$1"; fi
}
args=()  # the flags, with their relative paths made absolute: the job runs in the repository
experiments=("--experiments-dir" "$PWD/experiments")  # the scripts' default, ./experiments, where you submit
while [[ $# -gt 0 ]]; do
  case "$1" in
    --experiments-dir|--experiments-dir=*) experiments=() ;;&
    --data-root|--experiments-dir) args+=("$1" ${2+"$(absolute "$2")"}); shift $(($# > 1 ? 2 : 1)) ;;
    --data-root=*|--experiments-dir=*) args+=("${1%%=*}=$(absolute "${1#*=}")"); shift ;;
    --teacher-path) args+=("$1" ${2+"$(a_file "$2")"}); shift $(($# > 1 ? 2 : 1)) ;;
    --teacher-path=*) args+=("--teacher-path=$(a_file "${1#*=}")"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
# ${a[@]+"${a[@]}"}: an empty array is unbound to bash before 4.4 under set -u
set -- ${args[@]+"${args[@]:0:1}"} ${experiments[@]+"${experiments[@]}"} ${args[@]+"${args[@]:1}"}
export LOG_DIR="$(absolute "${LOG_DIR:-.}")"
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || ( "$1" != teacher.py && "$1" != student_v0.py ) ]]; then
  echo "error: give the script and its flags: bash command/imagenet_slurm.sh teacher.py|student_v0.py --dataset imagenet ..." >&2
  exit 2
fi
nodes="${NODES:-1}" gpus="${GPUS_PER_NODE:-8}"
GRES="${GRES-gpu:$gpus}"
if [[ "${TASKS:-$nodes}" -gt "$nodes" && -n "$GRES" ]]; then
  echo "error: TASKS=$TASKS on NODES=$nodes would start several torchruns on a node, each on its GPUs 0..$((gpus - 1)):" \
       "leave TASKS unset (one torchrun per node), set NODES=$TASKS, or GRES= for a trial without GPUs" >&2
  exit 2
fi
read -ra sbatch_args <<< "${SBATCH_ARGS:-}"
export PYTHON="${PYTHON:-python}" GPUS_PER_NODE="$gpus"
exclusive=() cpus=()
[[ "${EXCLUSIVE:-1}" == 1 ]] && exclusive=(--exclusive)
if [[ -n "${CPUS_PER_GPU:-}" || "${EXCLUSIVE:-1}" != 1 ]]; then  # else each task takes its share of the node's
  cpus=(--cpus-per-task "$((gpus * ${CPUS_PER_GPU:-9}))")
fi
call=(sbatch --parsable --job-name unixkd-imagenet --nodes "$nodes" --ntasks "${TASKS:-$nodes}" ${cpus[@]+"${cpus[@]}"}
      --mem "${MEM:-0}" ${exclusive[@]+"${exclusive[@]}"} --export=ALL
      --signal "B:USR1@${SIGNAL_SECONDS:-180}" --requeue --open-mode=append
      --output "$LOG_DIR/slurm-imagenet-%j.out" --chdir "$PWD" ${GRES:+"--gres=$GRES"}
      ${sbatch_args[@]+"${sbatch_args[@]}"} command/imagenet_slurm.sh --job "$@")
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
most="$(sinfo -h -N -o %c 2> /dev/null | tr -d + | sort -n | tail -n 1)"  # the most CPUs of any node
if [[ ${#cpus[@]} -gt 0 && -n "$most" && "${cpus[1]}" -gt "$most" ]]; then  # SLURM may queue it for ever
  echo "error: each task would ask ${cpus[1]} CPUs (GPUS_PER_NODE $gpus x CPUS_PER_GPU ${CPUS_PER_GPU:-9}), more than" \
       "any node has ($most): set CPUS_PER_GPU=$((most / gpus)), or leave it unset with EXCLUSIVE=1 (each node's own)" >&2
  exit 2
fi
job="$("${call[@]}")"
echo "submitted job ${job%%;*}: $((${TASKS:-$nodes} * gpus)) processes; log $LOG_DIR/slurm-imagenet-${job%%;*}.out; follow with squeue --me"
