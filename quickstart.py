"""The whole pipeline in a few minutes, on any machine: python quickstart.py

Trains a small teacher (resnet20), distils a resnet8 student from it twice, with conventional KD and
with UNIXKD, and prints the results table. It uses CIFAR-100 from --data-root, downloading it there if
it can; without it, it generates a synthetic stand-in, says so loudly, and runs on that. The runs are
short: they show the pipeline working, not the paper's numbers (command/command.sh runs those).

Every call starts its runs over (--force), so the numbers always match this call's data and epochs;
that is why it only works in a folder of its own (default ./experiments/quickstart).
"""
import textwrap
import time
import warnings
from pathlib import Path

import torch

import student_v0
import teacher
from utils.data.cifar100 import FOLDER, OFFICIAL_FIRST_CLASSES, OFFICIAL_TRAIN_IMAGES, load_cifar100
from utils.data.synthetic import write_synthetic_cifar100
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main
from utils.table import summary
from utils.unix_settings import KD_FLAGS, UNIXKD_FLAGS
from utils.table.runlist import as_flags

# The paper's resnet56 -> resnet20 pair in miniature (Ft/Fs 3.25 here, 3.06 there), small enough for a CPU.
TEACHER_ARCH = "resnet20"
STUDENT_ARCH = "resnet8"
METHODS = {"KD": as_flags(KD_FLAGS), "UNIXKD": as_flags(UNIXKD_FLAGS)}  # the paper's two methods

# Epochs per stage when --epochs is not given, so that the whole run takes about 5 minutes or less.
SYNTHETIC_EPOCHS = 6  # 5,000 images: ~3 minutes in all on 2 CPU cores; students reach ~70 % (chance: 1 %)
CIFAR_EPOCHS_ON_GPU = 10  # seconds an epoch on a GPU (an estimate: not timed on one)
CIFAR_EPOCHS_ON_CPU = 1  # 50,000 images: minutes an epoch on a CPU
CIFAR_CPU_MINUTES_PER_EPOCH = 5  # one epoch of all three stages on 2 cores: 4.6 min, timed on a full-size synthetic set

MARKER = ".quickstart"
RULE = "=" * 78


def parse_args(argv=None):
    parser = ArgumentParser(description="Teacher, KD student, UNIXKD student and the results table, in minutes.")
    parser.add_argument("--data-root", default="./data",
                        help="folder holding (or to receive) cifar-100-python/ (default ./data)")
    parser.add_argument("--experiments-dir", default="./experiments/quickstart",
                        help="a new or empty folder, or an earlier quickstart's (default ./experiments/quickstart)")
    parser.add_argument("--epochs", type=int,
                        help=f"epochs per stage (default {SYNTHETIC_EPOCHS} on the synthetic set; "
                        f"on CIFAR-100 {CIFAR_EPOCHS_ON_GPU} on a GPU, {CIFAR_EPOCHS_ON_CPU} on a CPU)")
    parser.add_argument("--gpu-id", type=int, default=0, help="CUDA device index; CPU is used when CUDA is absent")
    parser.add_argument("--synthetic", action="store_true",
                        help="use the generated set even when CIFAR-100 is available")
    parser.add_argument("--train-per-class", type=int, default=50,
                        help="synthetic set: training images per class (default 50)")
    parser.add_argument("--test-per-class", type=int, default=10,
                        help="synthetic set: test images per class (default 10)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    args.experiments_dir = Path(args.experiments_dir)
    return args


def print_header(title: str) -> None:
    print(f"\n{RULE}\n{title}\n{RULE}", flush=True)


def print_banner(paragraphs) -> None:
    """A box of '#' that no one scrolling past can miss."""
    print("\n" + "#" * 78)
    for paragraph in paragraphs:
        for line in textwrap.wrap(paragraph, 74):
            print(f"# {line}")
    print("#" * 78 + "\n", flush=True)


def why_not_official_cifar100(data_root: Path):
    """None when the official CIFAR-100 is in data_root (downloaded there if missing), else the reason."""
    print(f"looking for CIFAR-100 in {data_root / FOLDER}, downloading it if missing (--synthetic skips this)")
    try:
        data = load_cifar100(data_root, download=True)
    except UserError as error:
        return str(error)
    # A stand-in written there by `python -m utils.synthetic --out` loads fine too; it must not pass for the real set.
    if len(data.train_labels) != OFFICIAL_TRAIN_IMAGES or data.class_names[:3] != OFFICIAL_FIRST_CLASSES:
        return (f"{data_root / FOLDER} holds {len(data.train_labels)} training images of classes "
                f"{', '.join(data.class_names[:3])}, ...: not the official CIFAR-100")
    return None


def choose_data(args):
    """(data root, whether it is the official CIFAR-100); falls back to a generated set, loudly."""
    reason = "--synthetic was given" if args.synthetic else why_not_official_cifar100(Path(args.data_root))
    if reason is None:
        return Path(args.data_root), True
    root = write_synthetic_cifar100(Path(args.data_root) / "synthetic", args.train_per_class, args.test_per_class)
    print_banner([
        "NO CIFAR-100: USING A GENERATED SYNTHETIC DATA SET.",
        f"Why: {reason}",
        f"Generated instead: {root / FOLDER} ({100 * args.train_per_class} train / {100 * args.test_per_class} "
        "test images, 100 classes of smooth colour patterns).",
        "It only shows that the pipeline runs and learns. Its accuracies are NOT comparable to the paper's "
        "CIFAR-100 numbers.",
        f"For CIFAR-100: put its python files (train, test, meta) in {Path(args.data_root) / FOLDER}, "
        "or rerun where it can be downloaded.",
    ])
    return root, False


def default_epochs(official: bool, on_gpu: bool) -> int:
    if not official:
        return SYNTHETIC_EPOCHS
    return CIFAR_EPOCHS_ON_GPU if on_gpu else CIFAR_EPOCHS_ON_CPU


def announce_cifar100(data_root: Path, epochs: int, on_gpu: bool) -> None:
    """Say what a run on the real set will cost and what its numbers mean, before it starts."""
    cost = ("on a GPU" if on_gpu else
            f"on a CPU: about {CIFAR_CPU_MINUTES_PER_EPOCH * epochs} minutes on 2 cores "
            f"({CIFAR_CPU_MINUTES_PER_EPOCH} per epoch of all three stages)")
    print_banner([
        f"CIFAR-100 found in {data_root / FOLDER}.",
        f"Each stage runs {epochs} epoch(s) on the full 50,000 training images, {cost}.",
        "Accuracies after so few epochs are far below the paper's 240-epoch results: this is a smoke test "
        "of the pipeline (command/command.sh runs the paper's protocol).",
    ])


def claim_experiments_dir(path: Path) -> None:
    """Every call discards this folder's runs (--force), so the folder must be quickstart's own."""
    marker = path / MARKER
    if path.is_dir() and any(path.iterdir()) and not marker.is_file():
        raise UserError(f"{path} holds files that quickstart did not write, and quickstart starts its runs over "
                        "(--force); pass a new or empty --experiments-dir")
    path.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by quickstart.py, which starts the runs in this folder over on every call\n")


def schedule_args(epochs: int) -> list:
    """The protocol drops the lr late (x0.1 at 150, 180, 210 of 240); a short stage drops it once, at 3/4."""
    return ["--milestones", str(max(1, epochs * 3 // 4))]


def stages(args, data_root: Path, epochs: int) -> list:
    """(title, script main, argv) for the teacher and the two students."""
    common = ["--data-root", str(data_root), "--experiments-dir", str(args.experiments_dir), "--epoch", str(epochs),
              *schedule_args(epochs), "--gpu-id", str(args.gpu_id), "--force"]
    teacher_dir = args.experiments_dir / f"teacher_{TEACHER_ARCH}"
    students = [
        (f"{method} student: {STUDENT_ARCH} distilled from {teacher_dir}", student_v0.main,
         ["--teacher-path", str(teacher_dir), "--student-arch", STUDENT_ARCH, *flags, *common])
        for method, flags in METHODS.items()
    ]
    return [(f"teacher: {TEACHER_ARCH}", teacher.main, ["--arch", TEACHER_ARCH, *common]), *students]


def main(argv=None):
    start = time.perf_counter()
    args = parse_args(argv)
    claim_experiments_dir(args.experiments_dir)
    data_root, official = choose_data(args)
    on_gpu = torch.cuda.is_available()
    epochs = args.epochs or default_epochs(official, on_gpu)
    if official:
        announce_cifar100(data_root, epochs, on_gpu)
    planned = stages(args, data_root, epochs)
    for number, (title, script_main, stage_argv) in enumerate(planned, 1):
        print_header(f"[{number}/{len(planned) + 1}] {title}, {epochs} epoch(s)")
        with warnings.catch_warnings():
            # A 1-epoch stage has no room for an lr drop, so its milestone lies past the end on purpose.
            warnings.filterwarnings("ignore", message=r"milestones .* will never apply")
            script_main(stage_argv)
    print_header(f"[{len(planned) + 1}/{len(planned) + 1}] results: python -m utils.summary {args.experiments_dir} --all")
    summary.main([str(args.experiments_dir), "--all"])  # a quickstart's runs are trials, outside the protocol
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    print(f"\nrun folders (checkpoints, tensorboard logs, summary.json; counter.npy for UNIX students): "
          f"{args.experiments_dir}")
    print("the paper's experiments: bash command/command.sh (DRY_RUN=1 lists them)")
    print(f"quickstart finished in {minutes}m{seconds:02d}s")


if __name__ == "__main__":
    run_main(main)
