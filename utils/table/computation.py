"""UNIXKD's training computation relative to conventional KD, per pair and for the paper's table.

    python -m utils.computation --teacher resnet32x4 --student resnet8x4 [--k 48] [--batch-size 64]
    python -m utils.computation --teacher imagenet_resnet34 --student imagenet_resnet18   # at 224x224
    python -m utils.computation --paper-table [--json]
    python -m utils.computation --imagenet-table [--json]   # the literature's two ImageNet pairs

A run's own share, measured from the images each pass saw, is in its summary.json ("computation").

The count itself (utils.training.computation_meter) is the one every training run keeps.
"""
import json

from models import imagenet, model_dict
from models.cost import model_cost
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main
from utils.table.paper import IMAGENET_PAIRS, PAPER_PAIRS
from utils.training.computation_meter import check_sizes, relative_computation


def parse_args(argv):
    parser = ArgumentParser(
        prog="python -m utils.computation",
        description="UNIXKD training computation relative to conventional KD (paper's count).",
    )
    parser.add_argument("--teacher", help="teacher architecture: a models.model_dict name or imagenet_resnet18/34/50, "
                                          "imagenet_mobilenet_v2 (priced at 224x224)")
    parser.add_argument("--student", help="student architecture, named as --teacher")
    parser.add_argument("--k", type=int, default=48, help="images per batch the teacher sees and the student trains on (default 48)")
    parser.add_argument("--b", type=int, default=32, help="images kept un-mixed (default 32; checked, it does not change the cost)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch, B (default 64)")
    parser.add_argument("--paper-table", action="store_true", help="the 12 published pairs next to the paper's numbers")
    parser.add_argument("--imagenet-table", action="store_true",
                        help="the ImageNet pairs of the KD literature (ResNet-34 -> ResNet-18, ResNet-50 -> MobileNetV2) "
                             "at 224x224; the default k, 48 of 64, is the ImageNet default's 3/4 of each process's batch")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {teacher, student, ft_fs, computation}")
    args = parser.parse_args(argv)
    check_sizes(args.batch_size, args.k, args.b)
    if not (args.paper_table or args.imagenet_table) and not (args.teacher and args.student):
        raise UserError("give --teacher and --student, --paper-table or --imagenet-table")
    return args


def pair_costs(teacher, student, batch_size, k):
    """One row: both archs' forward FLOPs, Ft/Fs and UNIXKD computation in percent of KD."""
    ft, fs = model_cost(teacher)[1], model_cost(student)[1]
    return {
        "teacher": teacher,
        "student": student,
        "ft": ft,
        "fs": fs,
        "ft_fs": ft / fs,
        "computation": 100 * relative_computation(ft, fs, batch_size, k),
    }


def image_side(arch: str) -> int:
    """The image side models.cost prices an architecture at: 224 for the ImageNet networks, 32 otherwise."""
    return 224 if arch in imagenet.MODELS else 32


def format_pair(row, args):
    width, side = max(len(row["teacher"]), len(row["student"])), image_side(row["teacher"])
    return "\n".join(
        [
            f"teacher {row['teacher']:<{width}}  Ft = {row['ft'] / 1e6:9.2f} M MACs (forward, one {side}x{side} image)",
            f"student {row['student']:<{width}}  Fs = {row['fs'] / 1e6:9.2f} M MACs",
            f"Ft/Fs = {row['ft_fs']:.2f}",
            f"UNIXKD (k={args.k} of batch {args.batch_size}, b={args.b}) computation relative to KD: "
            f"{row['computation']:.2f} %",
        ]
    )


def format_paper_table(rows, args):
    lines = [
        f"UNIXKD computation relative to KD, k={args.k} of batch {args.batch_size}; FLOPs from models.cost",
        f"{'teacher -> student':<26} {'Ft/Fs':>7} {'(paper)':>8} {'computation':>12} {'(paper)':>9} {'diff':>9}",
    ]
    for row, paper in zip(rows, PAPER_PAIRS):
        pair = f"{row['teacher']} -> {row['student']}"
        lines.append(
            f"{pair:<26} {row['ft_fs']:7.2f} {paper.ft_fs:8.2f} {row['computation']:10.2f} % "
            f"{paper.computation:7.2f} % {row['computation'] - paper.computation:+6.2f} pp"
        )
    return "\n".join(lines)


def format_imagenet_table(rows, args):
    lines = [f"UNIXKD computation relative to KD on ImageNet, k={args.k} of batch {args.batch_size}; forward FLOPs of one "
             f"224x224 image from models.cost",
             f"{'teacher -> student':<44} {'Ft (G)':>7} {'Fs (G)':>7} {'Ft/Fs':>6} {'computation':>12}"]
    for row in rows:
        pair = f"{row['teacher']} -> {row['student']}"
        lines.append(f"{pair:<44} {row['ft'] / 1e9:7.2f} {row['fs'] / 1e9:7.2f} {row['ft_fs']:6.2f} "
                     f"{row['computation']:10.2f} %")
    lines.append("a run's measured share is in its summary.json (computation) and python -m utils.summary --all")
    return "\n".join(lines)


def json_row(row):
    # Two decimals: the paper's precision.
    return {
        "teacher": row["teacher"],
        "student": row["student"],
        "ft_fs": round(row["ft_fs"], 2),
        "computation": round(row["computation"], 2),
    }


def check_pair(teacher: str, student: str) -> None:
    """Both architectures of one zoo: CIFAR-100's (models.model_dict) or ImageNet's (priced at 224x224)."""
    zoos = {"CIFAR-100": list(model_dict), "ImageNet": list(imagenet.MODELS)}
    zoo = next((name for name, archs in zoos.items() if teacher in archs), None)
    if zoo is None:
        raise UserError(f"unknown --teacher {teacher!r}; choose a CIFAR-100 architecture ({', '.join(zoos['CIFAR-100'])}) "
                        f"or an ImageNet one ({', '.join(zoos['ImageNet'])})")
    if student not in zoos[zoo]:
        raise UserError(f"--student {student!r} is not one of the {zoo} architectures of --teacher {teacher}; "
                        f"choose one of: {', '.join(zoos[zoo])}")


def main(argv=None):
    args = parse_args(argv)
    if args.paper_table:
        pairs = [pair[:2] for pair in PAPER_PAIRS]
    else:
        pairs = IMAGENET_PAIRS if args.imagenet_table else [(args.teacher, args.student)]
    for teacher, student in pairs:
        check_pair(teacher, student)
    rows = [pair_costs(teacher, student, args.batch_size, args.k) for teacher, student in pairs]
    if args.json:
        print(json.dumps([json_row(row) for row in rows], indent=2))
    elif args.paper_table:
        print(format_paper_table(rows, args))
    elif args.imagenet_table:
        print(format_imagenet_table(rows, args))
    else:
        print(format_pair(rows[0], args))
    return 0


if __name__ == "__main__":
    run_main(main)
