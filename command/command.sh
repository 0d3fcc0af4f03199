#!/usr/bin/env bash
# Every run behind shared/reference/paper-results.md (CIFAR-100): the 6 teachers, then conventional KD and
# UNIXKD for the 12 teacher -> student pairs, seeds 0 to 3: 6 + 96 runs of 240 epochs, one after another.
#
#   bash command/command.sh                  # on GPU 0
#   GPU=1 bash command/command.sh            # on another GPU
#   DRY_RUN=1 bash command/command.sh        # only print the commands
#
# Resumable: every command gets --resume, so after a crash or Ctrl-C the same command continues each
# unfinished run from its last epoch and skips finished ones (they print "... nothing to resume" and exit 0).
set -euo pipefail

GPU="${GPU:-0}"
DRY_RUN="${DRY_RUN:-0}"
PYTHON="${PYTHON:-python}"
SEEDS=(0 1 2 3)
TEACHERS=(vgg13 ResNet50 resnet32x4 wrn_40_2 resnet56 vgg16)
PAIRS=(  # teacher student, in the order of the paper's table
  "vgg13 MobileNetV2"
  "ResNet50 MobileNetV2"
  "ResNet50 vgg8"
  "resnet32x4 ShuffleV1"
  "resnet32x4 ShuffleV2"
  "wrn_40_2 ShuffleV1"
  "wrn_40_2 wrn_16_2"
  "wrn_40_2 wrn_40_1"
  "resnet56 resnet20"
  "resnet32x4 resnet8x4"
  "vgg13 vgg8"
  "vgg16 vgg8"
)
KD_FLAGS=(--strategy 0 --k 64 --b 64 --w 1000)      # nothing mixed, the teacher sees all 64 images
UNIXKD_FLAGS=(--strategy 3 --k 48 --b 32 --w 10)    # entropy ranking, teacher sees 48 of 64

cd "$(dirname "$0")/.."  # the scripts and ./experiments are relative to the repository root

# The protocol's learning rate: 0.01 for the light MobileNetV2 and ShuffleNet models, 0.05 otherwise.
protocol_lr() {
  case "$1" in
    MobileNetV2 | ShuffleV1 | ShuffleV2) echo 0.01 ;;
    *) echo 0.05 ;;
  esac
}

run() {
  echo "$*"
  if [[ "$DRY_RUN" != 1 ]]; then
    "$@"
  fi
}

for arch in "${TEACHERS[@]}"; do
  run "$PYTHON" teacher.py --arch "$arch" --lr "$(protocol_lr "$arch")" --gpu-id "$GPU" --resume
done

# Seeds outermost: after each pass every pair has one more run, so the table fills evenly.
for seed in "${SEEDS[@]}"; do
  for pair in "${PAIRS[@]}"; do
    read -r teacher student <<< "$pair"
    common=(--teacher-path "./experiments/teacher_${teacher}/" --student-arch "$student"
            --lr "$(protocol_lr "$student")" --seed "$seed" --gpu-id "$GPU" --resume)
    run "$PYTHON" student_v0.py "${common[@]}" "${KD_FLAGS[@]}"
    run "$PYTHON" student_v0.py "${common[@]}" "${UNIXKD_FLAGS[@]}"
  done
done

echo
echo "results table: $PYTHON -m utils.summary ./experiments   (add --plot results.png for a figure)"
