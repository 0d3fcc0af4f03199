#!/usr/bin/env bash
# The GPU checks of --cuda-graphs in one go, for a machine with a CUDA device (docs/cuda-graphs.md):
#   1. the benchmark, eager against graphs, float32 and bf16: python -m utils.bench (resnet32x4 -> resnet8x4)
#   2. teacher.py and student_v0.py (UNIXKD and KD) for EPOCHS epochs on a 50,000-image synthetic set,
#      eager and with --cuda-graphs: epoch times from the scripts' own lines, and the first epoch's train
#      loss of both (the same within float tolerance if the recording is right; the random draws differ).
#   3. packing: 1, 2 and 4 UNIXKD runs at once on the one GPU, images per second summed over the runs.
#
#   bash command/gpu_checks.sh                       # everything; logs in $LOGS (default ./experiments/gpu_checks)
#   TEACHER=resnet8 STUDENT=resnet8 PER_CLASS=1 PACKING=2 MODES=graphs BENCH_ARGS="--rounds 1 --steps 1" \
#     bash command/gpu_checks.sh                     # a quick try of the script itself, on a CPU too
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
PER_CLASS="${PER_CLASS:-500}"   # training images per class: 500 is CIFAR-100's 50,000
EPOCHS="${EPOCHS:-2}"           # the first epoch also warms up and records; the lr drops for the last
PACKING="${PACKING:-1 2 4}"     # runs at once in the packing check
read -ra modes <<< "${MODES:-eager graphs}"  # eager, graphs (--cuda-graphs), or both
LOGS="${LOGS:-./experiments/gpu_checks}"
BENCH_ARGS="${BENCH_ARGS:-}"    # extra utils.bench flags
TEACHER="${TEACHER:-resnet32x4}"
STUDENT="${STUDENT:-resnet8x4}"
DATA="$LOGS/data"
mkdir -p "$LOGS"
: > "$LOGS/summary.txt"

step() { echo "== $1" | tee -a "$LOGS/summary.txt"; }
epochs() { grep -E '^epoch ' "$1" | tee -a "$LOGS/summary.txt"; }

step "data: $PER_CLASS training images per class"
"$PYTHON" -m utils.synthetic --out "$DATA" --train-per-class "$PER_CLASS" --test-per-class $((PER_CLASS / 5 + 1)) \
  > "$LOGS/data.log"

for amp in "" "--amp"; do
  step "benchmark $TEACHER -> $STUDENT ${amp:-float32}"
  # shellcheck disable=SC2086  # flag lists
  "$PYTHON" -m utils.bench --teacher "$TEACHER" --student "$STUDENT" $amp $BENCH_ARGS | tee -a "$LOGS/summary.txt"
done

# Students of every mode distil from the first mode's teacher: the same starting state for the comparison.
teacher="$LOGS/${modes[0]}/teacher_$TEACHER/"
for mode in "${modes[@]}"; do
  # The lr drops for the last epoch: a recording must be made again there, with the new lr.
  flags=(--epoch "$EPOCHS" --milestones $((EPOCHS > 1 ? EPOCHS - 1 : 1)) --data-root "$DATA"
         --experiments-dir "$LOGS/$mode" --force)
  [[ $mode == graphs ]] && flags+=(--cuda-graphs)
  step "teacher.py $TEACHER, $mode"
  "$PYTHON" teacher.py --arch "$TEACHER" "${flags[@]}" > "$LOGS/teacher_$mode.log"
  epochs "$LOGS/teacher_$mode.log"
  for method in "--strategy 3 --k 48 --b 32 --w 10" "--strategy 0 --k 64 --b 64 --w 1000"; do
    step "student_v0.py $STUDENT $method, $mode"
    log="$LOGS/student_${mode}_${method// /_}.log"
    # shellcheck disable=SC2086  # method is a list of flags
    "$PYTHON" student_v0.py --teacher-path "$teacher" --student-arch "$STUDENT" $method "${flags[@]}" > "$log"
    epochs "$log"
  done
done

# Each run's last epoch line gives its training images per second; their sum is what the GPU delivered.
for jobs in $PACKING; do
  step "packing: $jobs UNIXKD runs at once, $STUDENT from $TEACHER, eager"
  pids=()
  for ((run = 1; run <= jobs; run++)); do
    "$PYTHON" student_v0.py --teacher-path "$teacher" --student-arch "$STUDENT" --seed "$run" --epoch "$EPOCHS" \
      --data-root "$DATA" --experiments-dir "$LOGS/packing$jobs" --force > "$LOGS/packing${jobs}_$run.log" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # a failed run stops the script (set -e)
  for ((run = 1; run <= jobs; run++)); do grep -E '^epoch ' "$LOGS/packing${jobs}_$run.log" | tail -n 1; done |
    sed -E 's/.*\(([0-9]+) img\/s\)$/\1/' | awk -v jobs="$jobs" \
      '{ total += $1 } END { printf "%d runs at once: %d img/s in all\n", jobs, total }' | tee -a "$LOGS/summary.txt"
done
echo "summary: $LOGS/summary.txt"
