#!/usr/bin/env bash
# The GPU checks of every CUDA-only line (docs/cuda-graphs.md lists them, each with its stage) in one command,
# for a machine with one CUDA device or more (docs/cuda-graphs.md, docs/imagenet.md):
#
#   LOGS=$OUT WHEELS=experiments/wheels bash command/gpu_checks.sh
#
# Stages, in order, each under its own time limit (seconds) and all under BUDGET; a stage that fails or
# runs out of time is written to the summary with its exit status, and the next stage still runs:
#   versions  torch, CUDA, cuDNN, the devices, and which imports are missing (see WHEELS); always run
#   data      a synthetic CIFAR-100 set, PER_CLASS training and TEST_PER_CLASS test images per class
#   check     python -m utils.graph_check: graphs against eager step by step, bit for bit, UNIX's draws call by
#             call, with a control
#   bench     python -m utils.bench, float32 then bf16, BENCH_ARGS (2 rounds by default)
#   scripts   teacher.py, UNIXKD and KD students, eager then --cuda-graphs, EPOCHS epochs, lr drop before the last,
#             each under python -m utils.sync_check: the host synchronisations inside and outside the steps
#   resume    the first mode's UNIXKD run again, 1 epoch then --resume to EPOCHS: its last.pth's random state
#             (the CUDA generator's among it) must equal the uninterrupted run's
#   amp       one UNIXKD run with --amp --cuda-graphs
#   packing   PACKING UNIXKD runs at once, eager, images per second summed (optional: PACKING="" skips it)
#   imagenet  an ImageFolder of IMAGENET_PER_CLASS x 10 JPEGs at ImageNet's sizes (shorter side IMAGENET_SIZE
#             to twice that), written by the stage; python -m utils.bench --dataset imagenet, float32 then
#             bf16: each loader installed, per CPU-second, beside the ResNet-34 -> ResNet-18 KD and UNIXKD
#             steps; then a teacher and a UNIXKD student of one epoch each under python -m utils.torchrun and
#             utils.sync_check (pinned uint8 batches, normalised on the device)
#   dali      where DALI is installed: python -m utils.dali_check (the mixed pipeline against the CPU one on
#             DALI_DATA's photographs, else the imagenet stage's JPEGs, and a corrupt file), then a teacher
#             epoch with --loader dali under sync_check
#   nccl      with two CUDA devices or more: a teacher epoch on two of them under utils.torchrun (NCCL); on a
#             machine without CUDA the same over gloo (a dry run); not run on one GPU
#   ceiling   with CEILING=<script>: PYTHONPATH=. python <script> TEACHER STUDENT, the step's ceiling as one
#             recorded graph outside this project's code, beside bench's figures
# LOGS gets only small files: summary.txt and one log per stage. Data and runs go to WORK (a temporary folder).
#
# Estimated GPU time on an H100: about 6 minutes, and at most BUDGET = 420 s (+10 s to stop a stage) however it
# goes. Estimated from the one graphed figure known (a resnet8x4 UNIXKD epoch of 50,000 images: 2.5 s, so
# 20k img/s; eager taken 3x slower, the resnet32x4 teacher 3x slower again) and about 10 s per process for
# CUDA start-up, data upload and cuDNN autotuning: versions 10 s, data 5 s, check 50 s (16 runs of 30 steps
# and ~45 recordings), bench 2 x 25 s, scripts 6 x 12 s, resume 2 x 10 s + 5 s, amp 12 s, packing 15 s;
# ~240 s; imagenet: data 20 s (1,050 noise JPEGs took 16 CPU-seconds on this project's 2-core VM, in one
# process; twice as many, as before, left the last stages to the budget), bench 2 x 30 s (two passes of 960
# images per loader, then the steps), runs 2 x 25 s (guessed, never measured): ~130 s; dali (not on the
# device image) and nccl (one GPU) not run. The host syncs are counted in runs that take place anyway.
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
BUDGET="${BUDGET:-420}"         # seconds for everything
STAGES="${STAGES:-data check bench scripts resume amp packing imagenet dali nccl ceiling}"  # versions always run first
PER_CLASS="${PER_CLASS:-100}"   # 10,000 training images: epoch times scale, images per second do not
TEST_PER_CLASS="${TEST_PER_CLASS:-10}"
EPOCHS="${EPOCHS:-2}"
PACKING="${PACKING:-2}"         # runs at once in the packing stage; several numbers run several times
read -ra modes <<< "${MODES:-eager graphs}"
TEACHER="${TEACHER:-resnet32x4}"
STUDENT="${STUDENT:-resnet8x4}"
CHECK_ARGS="${CHECK_ARGS:-}"    # extra utils.graph_check flags
BENCH_ARGS="${BENCH_ARGS:---rounds 2}"
IMAGENET_PER_CLASS="${IMAGENET_PER_CLASS:-100}"  # 10 classes: 1,000 training JPEGs (written at ~65 a CPU-second)
IMAGENET_SIZE="${IMAGENET_SIZE:-375}"            # shorter side 375 to 749 (ImageNet's median image: 500 x 375)
IMAGENET_BENCH_ARGS="${IMAGENET_BENCH_ARGS:---batches 15 --steps 10}"  # after the stage's own flags: they win (15 x 64 images a pass)
IMAGENET_RUN_ARGS="${IMAGENET_RUN_ARGS:-}"       # extra flags of the ImageNet runs (the protocol's batch, 256, by default)
DALI_ARGS="${DALI_ARGS:-}"                       # extra utils.dali_check flags
DALI_DATA="${DALI_DATA:-}"                       # an ImageFolder of photographs for utils.dali_check (default: the imagenet stage's)
NCCL_ARGS="${NCCL_ARGS:-}"                       # extra flags of the two-process run (batch 256: 128 per process)
CEILING="${CEILING:-}"                           # a graph-ceiling probe script, run as PYTHONPATH=. python CEILING TEACHER STUDENT
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
not_run() { note "-- $1: not run, $2"; }  # not this machine's to run: no failure

# Versions first, and the imports every stage needs (missing wheels are installed from WHEELS into WORK).
VERSIONS='
import importlib.util, torch
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (graphs run eagerly)"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, device: {device}")
print(f"CUDA devices: {torch.cuda.device_count()}")
absent = [m for m in ("torchvision", "numpy", "tensorboardX") if importlib.util.find_spec(m) is None]
print("imports missing:", *absent) if absent else print("imports: all present")
print("DALI:", "installed" if importlib.util.find_spec("nvidia.dali") else "not installed")'
note "== versions"
: > "$LOGS/versions.log"  # what the later stages read, empty if versions cannot run
run_stage versions 30 versions.log "$PYTHON" -c "$VERSIONS" && tee -a "$SUMMARY" < "$LOGS/versions.log"
if grep -q "missing:.*tensorboardX" "$LOGS/versions.log" && [[ -n $WHEELS ]]; then
  "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$WORK/site" "$WHEELS"/*.whl > "$LOGS/wheels.log" 2>&1
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  run_stage "versions with $WHEELS" 30 versions.log "$PYTHON" -c "$VERSIONS" && tee -a "$SUMMARY" < "$LOGS/versions.log"
fi
scripts_can_run=1
cuda_devices=$(sed -n 's/^CUDA devices: //p' "$LOGS/versions.log")
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
  grep -vE '^graph check on' "$LOGS/check.log" | grep -E '^(graph check|unixkd|kd|teacher|evaluation|draws|control)' |
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

epoch_lines() { grep -E '^(epoch |host syncs: )' "$LOGS/$1" | tee -a "$SUMMARY"; }
SYNCS=(-m utils.sync_check)  # a run under it: its host synchronisations counted, inside and outside the steps
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
      run_stage "$run $mode" 60 "${run}_$mode.log" "$PYTHON" "${SYNCS[@]}" "${command[@]}" "${flags[@]}" "${extra[@]}"
      epoch_lines "${run}_$mode.log"
    done
  done
fi

# The random state a resumed run restores, through the scripts themselves: the first mode's UNIXKD run of the
# scripts stage, again, stopped after one epoch and resumed; last.pth's random states (the CPU's and the CUDA state of
# the device in use) must match.
SAME_RANDOM_STATE='
import sys, torch
from pathlib import Path
(run,) = Path(sys.argv[2]).glob("v0_student_*")  # the resumed run; the uninterrupted one has its name
def last(folder):
    return torch.load(Path(folder) / run.name / "ckpt" / "last.pth", weights_only=True, map_location="cpu")
def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    return a == b
def random_states(checkpoint):  # whatever the checkpoint keeps of them (rng, rng_by_rank, ...)
    return {key: value for key, value in checkpoint.items() if "rng" in key}
whole, resumed = last(sys.argv[1]), last(sys.argv[2])
equal = bool(random_states(whole)) and same(random_states(whole), random_states(resumed))
weights = max((x.double() - y.double()).abs().max().item() for x, y in zip(whole["state_dict"].values(), resumed["state_dict"].values()))
kinds = "; ".join(key + ": " + ", ".join(value) if isinstance(value, dict) else key for key, value in random_states(whole).items())
verdict = "identical to" if equal else "DIFFERENT FROM"
print(f"random state after the resumed run ({kinds}): {verdict} the uninterrupted run\x27s; largest weight "
      f"difference {weights:.3g} (cuDNN autotuning may pick other kernels: not asserted)")
sys.exit(0 if equal else 1)'

if wanted resume; then
  mode=${modes[0]}
  note "== resume: UNIXKD, $mode, 1 epoch then --resume to $EPOCHS, against the scripts stage's uninterrupted run"
  if ((scripts_can_run)); then
    resumed=(student_v0.py --teacher-path "$teacher" --student-arch "$STUDENT" "${UNIXKD[@]}" --data-root "$DATA"
             --milestones $((EPOCHS > 1 ? EPOCHS - 1 : 1)) --experiments-dir "$WORK/resume")
    [[ $mode == graphs ]] && resumed+=(--cuda-graphs)
    run_stage "resume first epoch" 60 resume_first.log "$PYTHON" "${resumed[@]}" --epoch 1 --force
    run_stage "resume" 60 resume.log "$PYTHON" "${resumed[@]}" --epoch "$EPOCHS" --resume
    run_stage "resume compare" 30 resume_compare.log "$PYTHON" -c "$SAME_RANDOM_STATE" "$WORK/$mode" "$WORK/resume"
    grep -E '^random state' "$LOGS/resume_compare.log" | tee -a "$SUMMARY"
  else
    skipped "resume" "tensorboardX is missing"
  fi
fi

if wanted amp; then
  note "== amp: UNIXKD with --amp --cuda-graphs"
  if ((scripts_can_run)); then
    run_stage "amp graphs" 60 unixkd_amp.log "$PYTHON" "${SYNCS[@]}" student_v0.py --teacher-path "$teacher" \
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

images="$WORK/imagenet"
if wanted imagenet; then
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
  # --no-python "$PYTHON": the workers run on the script's own python (torchrun's default is its own interpreter)
  imagenet_run=(-m utils.torchrun --standalone --nproc_per_node=1 --no-python "$PYTHON" "${SYNCS[@]}")
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
    grep -E '^(data:|teacher:|epoch |host syncs: )' "$LOGS/imagenet_$run.log" | tee -a "$SUMMARY"
  done
fi

if wanted dali; then
  note "== dali: the mixed pipeline against the CPU one, a corrupt file, and a teacher epoch with --loader dali"
  if ! grep -q "^DALI: " "$LOGS/versions.log"; then
    skipped dali "the versions stage did not say whether DALI is installed"
  elif ! grep -q "^DALI: installed" "$LOGS/versions.log"; then
    not_run dali "DALI is not installed (pip install nvidia-dali-cuda130; its wheel is larger than a device call carries)"
  elif [[ ! -d ${DALI_DATA:-$images} ]]; then
    skipped dali "${DALI_DATA:-$images} is missing"
  else
    # shellcheck disable=SC2086  # a list of flags
    kind=$([[ -n $DALI_DATA ]] && echo photographs || echo noise)  # the mean difference allowed depends on it
    run_stage "dali check" 120 dali_check.log "$PYTHON" -m utils.dali_check --data-root "${DALI_DATA:-$images}" \
      --images "$kind" $DALI_ARGS
    grep -E '^(dali check|(train|val): [0-9]+ images|corrupt file:)' "$LOGS/dali_check.log" | tee -a "$SUMMARY"
    if ((scripts_can_run)); then
      # shellcheck disable=SC2086  # a list of flags
      run_stage "dali run" 90 dali_run.log "$PYTHON" "${SYNCS[@]}" teacher.py --arch imagenet_resnet18 --dataset imagenet \
        --loader dali --data-root "$images" --epoch 1 --experiments-dir "$WORK/dali_runs" --force $IMAGENET_RUN_ARGS
      epoch_lines dali_run.log
    else
      skipped "dali run" "tensorboardX is missing"
    fi
  fi
fi

if wanted nccl; then
  note "== nccl: a teacher epoch on two processes under python -m utils.torchrun (CUDA devices: ${cuda_devices:-unknown})"
  if [[ -z $cuda_devices ]]; then
    skipped nccl "the versions stage did not say how many CUDA devices there are"
  elif ((cuda_devices == 1)); then
    not_run nccl "one CUDA device (NCCL between two needs two)"
  elif [[ ! -d $images ]] || ((!scripts_can_run)); then
    skipped nccl "the imagenet stage's JPEGs or tensorboardX are missing"
  else
    # shellcheck disable=SC2086  # a list of flags
    run_stage nccl 90 nccl.log "$PYTHON" -m utils.torchrun --standalone --nproc_per_node=2 --no-python "$PYTHON" teacher.py \
      --arch imagenet_resnet18 --dataset imagenet --data-root "$images" --epoch 1 --experiments-dir "$WORK/nccl" --force \
      $NCCL_ARGS
    grep -E '^(data:|epoch )' "$LOGS/nccl.log" | tee -a "$SUMMARY"
  fi
fi

if wanted ceiling; then
  note "== ceiling: $TEACHER -> $STUDENT as one recorded graph, outside this project's step"
  if [[ -z $CEILING ]]; then
    not_run ceiling "no CEILING script given"
  else
    run_stage ceiling 60 ceiling.log env PYTHONPATH=. "$PYTHON" "$CEILING" "$TEACHER" "$STUDENT"
    tee -a "$SUMMARY" < "$LOGS/ceiling.log"
  fi
fi

note "== done in $((SECONDS - began))s: $failures stage(s) failed or skipped; summary: $SUMMARY"
((failures == 0))
