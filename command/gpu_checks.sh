#!/usr/bin/env bash
# The GPU checks of --cuda-graphs and of the ImageNet path in one command, for a machine with one CUDA device
# (docs/cuda-graphs.md, docs/imagenet.md):
#
#   LOGS=$OUT WHEELS=experiments/wheels bash command/gpu_checks.sh
#
# Stages, in order, each under its own time limit (seconds) and all under BUDGET; a stage that fails or
# runs out of time is written to the summary with its exit status, and the next stage still runs:
#   versions  torch, CUDA, cuDNN, the device, and which imports are missing (see WHEELS); always run
#   data      a synthetic CIFAR-100 set, PER_CLASS training and TEST_PER_CLASS test images per class
#   check     python -m utils.graph_check: graphs against eager step by step, bit for bit, with a control
#   bench     python -m utils.bench, float32 then bf16, BENCH_ARGS (2 rounds by default)
#   scripts   teacher.py, UNIXKD and KD students, eager then --cuda-graphs, EPOCHS epochs, lr drop before the last
#   amp       one UNIXKD run with --amp --cuda-graphs
#   packing   PACKING UNIXKD runs at once, eager, images per second summed (optional: PACKING="" skips it)
#   imagenet  an ImageFolder of IMAGENET_PER_CLASS x 10 JPEGs at ImageNet's sizes (shorter side IMAGENET_SIZE
#             to twice that), written by the stage; python -m utils.bench --dataset imagenet, float32 then
#             bf16: each loader installed (DALI is not: its wheel is larger than what a device call carries)
#             beside the ResNet-34 -> ResNet-18 KD and UNIXKD steps; then a teacher and a UNIXKD student run
#             of one epoch each under python -m utils.torchrun (one process: no process group forms, so NCCL
#             itself is not exercised by one GPU)
# LOGS gets only small files: summary.txt and one log per stage. Data and runs go to WORK (a temporary folder).
#
# Estimated GPU time on an H200: about 5.5 minutes, and at most BUDGET = 450 s (+10 s to stop a stage) however
# it goes. Estimated from the one graphed figure known (a resnet8x4 UNIXKD epoch of 50,000 images: 2.5 s, so
# 20k img/s; eager taken 3x slower, the resnet32x4 teacher 3x slower again) and about 10 s per process for
# CUDA start-up, data upload and cuDNN autotuning: versions 10 s, data 5 s, check 45 s (14 runs of 30 steps
# and ~40 recordings), bench 2 x 25 s, scripts 6 x 12 s, amp 12 s, packing 15 s; total ~210 s; imagenet: data
# 15 s, bench 2 x 30 s, runs 2 x 25 s (guessed, never measured): ~125 s.
#
# tensorboardX: the training scripts log through it (a project dependency), but the device image has only
# torch and torchvision and no internet. Rather than make logging optional for one machine, carry the wheels:
#   pip download --no-deps -d experiments/wheels tensorboardX protobuf packaging
# and give WHEELS=experiments/wheels (carried along): they are installed into WORK, nowhere else. Without
# tensorboardX the script stages are skipped and say so; check and bench do not need it.
#
# A quick try of the script itself, on a CPU (graphs through the stand-in, as tests/test_gpu_checks.py runs it):
#   PYTHON=<tests/graph_stand_in.py wrapper> TEACHER=resnet8 STUDENT=resnet8 PER_CLASS=1 ... bash command/gpu_checks.sh
set -uo pipefail  # no -e: a failed stage is recorded and the next one runs
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

PYTHON="${PYTHON:-python}"
LOGS="${LOGS:-./experiments/gpu_checks}"
WORK="${WORK:-$(mktemp -d -t unixkd_gpu_checks.XXXXXX)}"
WHEELS="${WHEELS:-}"
BUDGET="${BUDGET:-450}"         # seconds for everything
STAGES="${STAGES:-data check bench scripts amp packing imagenet}"  # versions always run first
PER_CLASS="${PER_CLASS:-100}"   # 10,000 training images: epoch times scale, images per second do not
TEST_PER_CLASS="${TEST_PER_CLASS:-10}"
EPOCHS="${EPOCHS:-2}"
PACKING="${PACKING:-2}"         # runs at once in the packing stage; several numbers run several times
read -ra modes <<< "${MODES:-eager graphs}"
TEACHER="${TEACHER:-resnet32x4}"
STUDENT="${STUDENT:-resnet8x4}"
CHECK_ARGS="${CHECK_ARGS:-}"    # extra utils.graph_check flags
BENCH_ARGS="${BENCH_ARGS:---rounds 2}"
IMAGENET_PER_CLASS="${IMAGENET_PER_CLASS:-200}"  # 10 classes: 2,000 training JPEGs
IMAGENET_SIZE="${IMAGENET_SIZE:-375}"            # shorter side 375 to 749 (ImageNet's median image: 500 x 375)
IMAGENET_BENCH_ARGS="${IMAGENET_BENCH_ARGS:---batches 20 --steps 10}"  # after the stage's own flags: they win
IMAGENET_RUN_ARGS="${IMAGENET_RUN_ARGS:-}"       # extra flags of the two runs (the protocol's batch, 256, by default)
DATA="$WORK/data"
SUMMARY="$LOGS/summary.txt"
mkdir -p "$LOGS" "$WORK"
: > "$SUMMARY"
began=$SECONDS
failures=0

note() { echo "$*" | tee -a "$SUMMARY"; }
wanted() { [[ " $STAGES " == *" $1 "* ]]; }

# run_stage NAME LIMIT LOG COMMAND...: the command's output to $LOGS/LOG, its outcome to the summary.
run_stage() {
  local name=$1 limit=$2 log="$LOGS/$3" left status=0 start=$SECONDS
  shift 3
  left=$((BUDGET - (SECONDS - began)))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    note "-- $name: SKIPPED, the budget of ${BUDGET}s is spent"
    failures=$((failures + 1))
    return 1
  fi
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1 || status=$?
  if ((status == 0)); then
    note "-- $name: ok in $((SECONDS - start))s"
    return 0
  fi
  ((status == 124 || status == 137)) && note "-- $name: TIMED OUT after ${limit}s (exit status $status)" ||
    note "-- $name: FAILED with exit status $status after $((SECONDS - start))s; last lines of $log:"
  tail -n 5 "$log" | sed 's/^/   /' | tee -a "$SUMMARY"
  failures=$((failures + 1))
  return "$status"
}

skipped() { note "-- $1: SKIPPED, $2"; failures=$((failures + 1)); }

# Versions first, and the imports every stage needs (missing wheels are installed from WHEELS into WORK).
VERSIONS='
import importlib.util, torch
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (graphs run eagerly)"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, device: {device}")
absent = [m for m in ("torchvision", "numpy", "tensorboardX") if importlib.util.find_spec(m) is None]
print("imports missing:", *absent) if absent else print("imports: all present")'
note "== versions"
run_stage versions 30 versions.log "$PYTHON" -c "$VERSIONS" && tee -a "$SUMMARY" < "$LOGS/versions.log"
if grep -q "missing:.*tensorboardX" "$LOGS/versions.log" && [[ -n $WHEELS ]]; then
  "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$WORK/site" "$WHEELS"/*.whl > "$LOGS/wheels.log" 2>&1
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  run_stage "versions with $WHEELS" 30 versions.log "$PYTHON" -c "$VERSIONS" && tee -a "$SUMMARY" < "$LOGS/versions.log"
fi
scripts_can_run=1
if ! grep -q "imports: all present" "$LOGS/versions.log"; then
  note "to bring tensorboardX: pip download --no-deps -d experiments/wheels tensorboardX protobuf packaging, carry it, WHEELS=experiments/wheels"
  grep -q "missing:.*tensorboardX" "$LOGS/versions.log" && scripts_can_run=0
fi

if wanted data; then
  note "== data: $PER_CLASS training and $TEST_PER_CLASS test images per class in $DATA"
  run_stage data 60 data.log "$PYTHON" -m utils.synthetic --out "$DATA" --train-per-class "$PER_CLASS" \
    --test-per-class "$TEST_PER_CLASS"
fi

if wanted check; then
  note "== check: graphs against eager, step by step, $TEACHER -> $STUDENT"
  # shellcheck disable=SC2086  # a list of flags
  run_stage check 120 check.log "$PYTHON" -m utils.graph_check --teacher "$TEACHER" --student "$STUDENT" $CHECK_ARGS
  grep -vE '^graph check on' "$LOGS/check.log" | grep -E '^(graph check|unixkd|kd|teacher|evaluation|control)' |
    tee -a "$SUMMARY"
fi

if wanted bench; then
  for amp in "" "--amp"; do
    note "== bench: $TEACHER -> $STUDENT ${amp:-float32}"
    # shellcheck disable=SC2086  # flag lists
    run_stage "bench ${amp:-float32}" 75 "bench${amp:+_amp}.log" "$PYTHON" -m utils.bench --teacher "$TEACHER" \
      --student "$STUDENT" $amp $BENCH_ARGS
    grep -E '^\(|speed-up|wall time|projected|device:' "$LOGS/bench${amp:+_amp}.log" | tee -a "$SUMMARY"
  done
fi

epoch_lines() { grep -E '^epoch ' "$LOGS/$1" | tee -a "$SUMMARY"; }
UNIXKD=(--strategy 3 --k 48 --b 32 --w 10)
KD=(--strategy 0 --k 64 --b 64 --w 1000)
flags=(--epoch "$EPOCHS" --milestones $((EPOCHS > 1 ? EPOCHS - 1 : 1)) --data-root "$DATA" --force)
teacher="$WORK/${modes[0]}/teacher_$TEACHER/"  # every student distils from the first mode's teacher

if wanted scripts; then
  for mode in "${modes[@]}"; do
    extra=(--experiments-dir "$WORK/$mode")
    [[ $mode == graphs ]] && extra+=(--cuda-graphs)
    for run in teacher unixkd kd; do
      note "== scripts: $run, $mode, $EPOCHS epochs"
      ((scripts_can_run)) || { skipped "$run $mode" "tensorboardX is missing"; continue; }
      case $run in
        teacher) command=(teacher.py --arch "$TEACHER") ;;
        unixkd) command=(student_v0.py --teacher-path "$teacher" --student-arch "$STUDENT" "${UNIXKD[@]}") ;;
        kd) command=(student_v0.py --teacher-path "$teacher" --student-arch "$STUDENT" "${KD[@]}") ;;
      esac
      run_stage "$run $mode" 60 "${run}_$mode.log" "$PYTHON" "${command[@]}" "${flags[@]}" "${extra[@]}"
      epoch_lines "${run}_$mode.log"
    done
  done
fi

if wanted amp; then
  note "== amp: UNIXKD with --amp --cuda-graphs"
  if ((scripts_can_run)); then
    run_stage "amp graphs" 60 unixkd_amp.log "$PYTHON" student_v0.py --teacher-path "$teacher" \
      --student-arch "$STUDENT" "${UNIXKD[@]}" "${flags[@]}" --experiments-dir "$WORK/amp" --amp --cuda-graphs
    epoch_lines unixkd_amp.log
  else
    skipped "amp graphs" "tensorboardX is missing"
  fi
fi

# Each run's last epoch line gives its training images per second; their sum is what the GPU delivered.
if wanted packing; then
  for jobs in $PACKING; do
    note "== packing: $jobs UNIXKD runs at once, eager"
    ((scripts_can_run)) || { skipped "packing $jobs" "tensorboardX is missing"; continue; }
    # shellcheck disable=SC2016  # expanded by the inner shell
    run_stage "packing $jobs" 75 "packing$jobs.log" bash -c '
      for ((run = 1; run <= $0; run++)); do
        "$1" student_v0.py --teacher-path "$2" --student-arch "$3" --seed "$run" "${@:5}" \
          --experiments-dir "$4/packing$0" > "$4/packing$0_$run.log" 2>&1 &
      done
      status=0
      for pid in $(jobs -p); do wait "$pid" || status=$?; done
      for ((run = 1; run <= $0; run++)); do grep -E "^epoch " "$4/packing$0_$run.log" | tail -n 1; done
      exit "$status"' "$jobs" "$PYTHON" "$teacher" "$STUDENT" "$WORK" "${flags[@]}"
    sed -nE 's/.*\(([0-9]+) img\/s\)$/\1/p' "$LOGS/packing$jobs.log" | awk -v jobs="$jobs" \
      '{ total += $1; n++ } END { printf "%d runs at once (%d finished): %d img/s in all\n", jobs, n, total }' |
      tee -a "$SUMMARY"
  done
fi

if wanted imagenet; then
  images="$WORK/imagenet"
  note "== imagenet: $((10 * IMAGENET_PER_CLASS)) training JPEGs, shorter side $IMAGENET_SIZE to $((2 * IMAGENET_SIZE - 1)), in $images"
  run_stage "imagenet data" 90 imagenet_data.log "$PYTHON" -m utils.synthetic_imagenet --out "$images" --classes 10 \
    --train-per-class "$IMAGENET_PER_CLASS" --val-per-class 5 --size "$IMAGENET_SIZE"
  for amp in "" "--amp"; do
    note "== imagenet bench: loaders, and imagenet_resnet34 -> imagenet_resnet18 steps ${amp:-float32}"
    # shellcheck disable=SC2086  # flag lists
    run_stage "imagenet bench ${amp:-float32}" 90 "imagenet_bench${amp:+_amp}.log" "$PYTHON" -m utils.bench \
      --dataset imagenet --data-root "$images" --arch imagenet_resnet18 --teacher imagenet_resnet34 \
      --workers "$(nproc)" $amp $IMAGENET_BENCH_ARGS
    grep -E '^(ImageNet pipeline|  |UNIXKD / KD|with --loader)' "$LOGS/imagenet_bench${amp:+_amp}.log" | tee -a "$SUMMARY"
  done
  runs="$WORK/imagenet_runs"
  imagenet_run=(-m utils.torchrun --standalone --nproc_per_node=1)
  common=(--dataset imagenet --data-root "$images" --epoch 1 --experiments-dir "$runs" --force)
  for run in teacher unixkd; do
    note "== imagenet $run: one epoch under python -m utils.torchrun"
    ((scripts_can_run)) || { skipped "imagenet $run" "tensorboardX is missing"; continue; }
    case $run in
      teacher) command=(teacher.py --arch imagenet_resnet18) ;;
      unixkd) command=(student_v0.py --teacher-path "$runs/teacher_imagenet_resnet18" --student-arch imagenet_resnet18) ;;
    esac
    # shellcheck disable=SC2086  # a list of flags
    run_stage "imagenet $run" 90 "imagenet_$run.log" "$PYTHON" "${imagenet_run[@]}" "${command[@]}" "${common[@]}" \
      $IMAGENET_RUN_ARGS
    grep -E '^(data:|teacher:|epoch )' "$LOGS/imagenet_$run.log" | tee -a "$SUMMARY"
  done
fi

note "== done in $((SECONDS - began))s: $failures stage(s) failed or skipped; summary: $SUMMARY"
((failures == 0))
