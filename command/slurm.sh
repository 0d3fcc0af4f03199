#!/usr/bin/env bash
# The run list (python -m utils.runlist) on a SLURM cluster: a job array for phase 1 (the teachers and the
# students trained alone) and one for phase 2 (the distilled students) that starts once every phase-1 task
# has ended. Each task is one run with --resume; tasks are requeueable, and a requeued run continues from
# its last epoch.
# A teacher imported with `python -m utils.teachers import` (or fetch) counts as finished: it is not trained.
#
#   bash command/slurm.sh                                                 # one GPU per task (--gres=gpu:1)
#   SBATCH_ARGS="--partition=gpu --time=04:00:00" bash command/slurm.sh   # cluster options, passed to sbatch
#   GRES= bash command/slurm.sh                                           # no --gres (a CPU-only cluster)
#   DRY_RUN=1 bash command/slurm.sh                                       # print the sbatch calls and the run list
#
# The same knobs as command/command.sh (SEEDS, EPOCHS, DATA_ROOT, EXPERIMENTS_DIR, PYTHON, ONLY, ABLATIONS,
# EXTENSIONS).
# The repository and EXPERIMENTS_DIR must be on a file system the nodes share.
set -euo pipefail
cd "$(dirname "$0")/.."  # sbatch runs the tasks in this directory

export PYTHON="${PYTHON:-python}"
export GPU=0  # each task sees the GPU SLURM gives it (CUDA_VISIBLE_DEVICES) as cuda:0
GRES="${GRES-gpu:1}"
read -ra sbatch_args <<< "${SBATCH_ARGS:-}"
experiments="${EXPERIMENTS_DIR:-./experiments}"
lists="$experiments/slurm"
stamp="$(date +%Y%m%d-%H%M%S)"
if [[ "${DRY_RUN:-0}" != 1 ]] && ! command -v sbatch > /dev/null; then
  echo "error: sbatch not found: run this on a SLURM login node (DRY_RUN=1 shows the calls it would make)" >&2
  exit 2
fi

# submit PHASE [JOB]: one array task per unfinished run of PHASE, after job JOB has ended. Sets job to the
# array's id (empty when PHASE has nothing left to run).
submit() {
  local phase="$1" after="${2:-}" names list
  job=""
  names="$("$PYTHON" -m utils.runlist --phase "$phase" --pending --names)"
  [[ -n "$names" ]] || return 0
  list="$lists/$stamp-$phase.txt"  # each submission keeps its own list: a task reads its line from it
  local call=(sbatch --parsable --job-name "unixkd-$phase" --array "0-$(( $(wc -l <<< "$names") - 1 ))" --requeue
              --open-mode=append --output "$lists/$stamp-$phase-%a.out" ${GRES:+"--gres=$GRES"}
              ${after:+"--dependency=afterany:$after"} "${sbatch_args[@]}" command/slurm_task.sh "$list")
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '%q' "${call[0]}"
    printf ' %q' "${call[@]:1}"
    echo
    job="JOB_ID_OF_${phase^^}"
    return 0
  fi
  mkdir -p "$lists"
  echo "$names" > "$list"
  job="$("${call[@]}")"
  job="${job%%;*}"  # --parsable prints "id" or "id;cluster"
  echo "submitted $(wc -l <<< "$names") $phase runs as job array $job (runs: $list)"
}

# afterany, not afterok: a failed phase-1 task (one teacher, or one student trained alone) must not leave the
# whole of phase 2 pending forever; the students of a missing teacher stop at once with a clear error.
submit teachers
teachers_job="$job"
submit students "$teachers_job"
students_job="$job"
if [[ -z "$teachers_job$students_job" ]]; then
  echo "nothing to submit: every run of the list is finished"
elif [[ "${DRY_RUN:-0}" == 1 ]]; then
  "$PYTHON" -m utils.runlist
else
  echo "follow with: squeue --me; $PYTHON -m utils.jobs status; $PYTHON -m utils.summary $experiments"
fi
