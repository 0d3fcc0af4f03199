#!/usr/bin/env bash
# Every run behind shared/reference/paper-results.md (CIFAR-100), from the run list (python -m utils.runlist):
# phase 1, teacher.py: the 6 teachers and the 8 student architectures trained alone, seeds 0-3;
# phase 2, once phase 1 has ended: KD and UNIXKD for the 12 pairs, seeds 0-3. 134 runs of 240 epochs.
# A teacher imported with `python -m utils.teachers import` (or fetch) counts as finished: it is not trained.
#
#   bash command/command.sh                                # one run at a time, on GPU 0
#   GPU=1 bash command/command.sh                          # one at a time, on GPU 1
#   GPUS="0 1 2 3" JOBS_PER_GPU=2 bash command/command.sh  # 8 at once, each on one GPU (needs GNU parallel)
#   DRY_RUN=1 bash command/command.sh                      # only print the run list
#
# Other knobs (SEEDS, EPOCHS, DATA_ROOT, EXPERIMENTS_DIR, PYTHON, ONLY, ABLATIONS): docs/dispatchers.md;
# EXTENSIONS=1 adds DKD and LSKD with and without UNIX: docs/distillers.md.
# Resumable: only unfinished runs start, each with --resume, so after a crash or Ctrl-C the same
# command continues each run from its last epoch. Every run is logged to $EXPERIMENTS_DIR/jobs.log, and its
# output kept in $EXPERIMENTS_DIR/logs/<run folder>.log (one run at a time: shown here too).
set -euo pipefail
cd "$(dirname "$0")/.."  # the scripts and ./experiments are relative to the repository root

PYTHON="${PYTHON:-python}"
GPUS="${GPUS:-${GPU:-0}}"
JOBS_PER_GPU="${JOBS_PER_GPU:-1}"
read -ra gpu_list <<< "$GPUS"
for gpu in "${gpu_list[@]}"; do
  [[ "$gpu" =~ ^[0-9]+$ ]] || { echo "error: GPUS=\"$GPUS\": must be GPU indices separated by spaces, e.g. GPUS=\"0 1\"" >&2; exit 2; }
done
(( ${#gpu_list[@]} > 0 )) || { echo "error: GPUS is empty; give GPU indices, e.g. GPUS=\"0 1\"" >&2; exit 2; }
[[ "$JOBS_PER_GPU" =~ ^[1-9][0-9]*$ ]] || { echo "error: JOBS_PER_GPU=$JOBS_PER_GPU: must be a positive integer" >&2; exit 2; }
jobs=$(( ${#gpu_list[@]} * JOBS_PER_GPU ))
if (( jobs > 1 )); then
  export GPU=0  # each run sees only its own GPU (CUDA_VISIBLE_DEVICES), as cuda:0
else
  export GPU="${gpu_list[0]}"
fi
summary_hint="results table: $PYTHON -m utils.summary ${EXPERIMENTS_DIR:-./experiments}   (add --plot results.png for a figure)"

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  (( jobs == 1 )) || echo "# $jobs runs at once: GPUS=\"$GPUS\" x JOBS_PER_GPU=$JOBS_PER_GPU, each run on one GPU, seen as cuda:0"
  "$PYTHON" -m utils.runlist
  echo "$summary_hint"
  exit 0
fi
# moreutils has a different program called parallel, hence the version check.
if (( jobs > 1 )) && ! { parallel --version 2> /dev/null | grep -q "GNU parallel"; }; then
  echo "error: $jobs runs at once (GPUS=\"$GPUS\", JOBS_PER_GPU=$JOBS_PER_GPU) need GNU parallel, which is not installed: apt-get install parallel (Debian/Ubuntu), or run one at a time without GPUS and JOBS_PER_GPU" >&2
  exit 2
fi
# Ctrl-C reaches GNU parallel, not its jobs (each in a process group of its own); its default is then SIGTERM
# and SIGKILL within a second, before a run has saved: have it pass Ctrl-C on and give each run 30 s to save and
# stop (--termseq; a GNU parallel too old for it keeps its default).
termseq=()
if (( jobs > 1 )) && parallel --will-cite --termseq INT,1 true ::: x > /dev/null 2>&1; then
  termseq=(--termseq INT,30000,TERM,5000,KILL,25)
fi

# Ctrl-C reaches the runs as well: once they have stopped, stop here too (rather than start the next run).
trap 'echo "interrupted: the same command continues every unfinished run" >&2; exit 130' INT
failed=0 ran=0
declare -A title=([teachers]="phase 1, teacher.py: teachers and students trained alone" [students]="phase 2, student_v0.py: distilled students")
for phase in teachers students; do
  names="$("$PYTHON" -m utils.runlist --phase "$phase" --pending --names)"
  [[ -n "$names" ]] || continue
  ran=1
  echo "== ${title[$phase]}: $(wc -l <<< "$names") to run"
  if (( jobs == 1 )); then
    while IFS= read -r -u 3 name; do
      "$PYTHON" -m utils.jobs run --gpus "$GPU" --tee "$name" || failed=1
    done 3<<< "$names"
  else
    # Job slot {%} (1..jobs) picks the GPU, so each GPU always holds JOBS_PER_GPU runs; each run's output goes
    # to $EXPERIMENTS_DIR/logs/, and here only when a run starts and ends.
    parallel --will-cite --quote --line-buffer --jobs "$jobs" ${termseq[@]+"${termseq[@]}"} \
      "$PYTHON" -m utils.jobs run --gpus "$GPUS" --slot {%} --pin --to-file --jobs "$jobs" {} <<< "$names" || failed=1
  fi
done

echo
# Each run ended with the counts line: after runs, only the failed ones' names are left to say.
"$PYTHON" -m utils.jobs status --jobs "$jobs" $( (( ran )) && echo --failed-only)
echo "$summary_hint"
exit "$failed"
