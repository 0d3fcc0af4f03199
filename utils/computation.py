"""Training computation of UNIXKD relative to conventional KD, counted the way the paper counts it.

Costs are forward FLOPs of one image: Ft through the teacher, Fs through the student (models.cost
counts multiply-accumulates, as the paper's "FLOPs" do; only their ratio matters here). A backward
pass costs one forward, so training the student on an image costs 2 * Fs. Per batch of B images
conventional KD spends B*Ft + 2*B*Fs; UNIXKD scores all B images with a no-grad student pass and
then runs teacher and student training on k of them: k*Ft + B*Fs + 2*k*Fs.

    python -m utils.computation --teacher resnet32x4 --student resnet8x4 [--k 48] [--batch-size 64]
    python -m utils.computation --paper-table [--json]
"""

import json
import operator

from models.cost import model_cost
from utils import distributed
from utils.build import check_arch
from utils.cli import ArgumentParser, run_main
from utils.errors import UserError
from utils.paper import PAPER_PAIRS


def flops_spent(ft, fs, teacher_images, scoring_images, student_images):
    """FLOPs of the passes run: teacher forward, student no-grad scoring, student forward+backward."""
    return teacher_images * ft + scoring_images * fs + 2 * student_images * fs


def flops_kd(ft, fs, images):
    """FLOPs conventional KD spends on the same images: no scoring, teacher and student see all."""
    return flops_spent(ft, fs, images, 0, images)


def relative_computation(ft, fs, batch_size=64, k=48):
    """UNIXKD's computation per full batch as a fraction of KD's (0.8732 for Ft/Fs = 6.12)."""
    return flops_spent(ft, fs, k, batch_size, k) / flops_kd(ft, fs, batch_size)


class ComputationMeter:
    """Counts the images each pass of a training run saw, and prices them against conventional KD.

    The trainer knows n and k on the host, so counting never waits on the GPU. FLOPs follow from
    the counts (every cost is linear in them), so the state is the counts alone.
    """

    COUNTS = ("batches", "images", "teacher_images", "scoring_images", "student_images")

    def __init__(self, ft, fs):
        self.ft = ft
        self.fs = fs
        self.counts = dict.fromkeys(self.COUNTS, 0)

    def add_batch(self, n, teacher_images, scoring_images, student_images):
        """Count one batch of n images and how many of them went through each pass."""
        passes = {
            "teacher_images": operator.index(teacher_images),
            "scoring_images": operator.index(scoring_images),
            "student_images": operator.index(student_images),
        }
        n = operator.index(n)
        for key, count in passes.items():
            if not 0 <= count <= n:
                raise ValueError(f"{key}={count} is outside 0..{n}, the batch's image count")
        self.counts["batches"] += 1
        self.counts["images"] += n
        for key, count in passes.items():
            self.counts[key] += count

    def sum_over_ranks_since(self, before: dict) -> None:
        """Under DDP each rank counted its own batches since `before` (a copy of counts): add up every rank's."""
        added = distributed.sum_ints_over_ranks([self.counts[key] - before[key] for key in self.COUNTS])
        self.counts = {key: before[key] + more for key, more in zip(self.COUNTS, added)}

    def flops_spent(self):
        c = self.counts
        return flops_spent(self.ft, self.fs, c["teacher_images"], c["scoring_images"], c["student_images"])

    def flops_kd(self):
        return flops_kd(self.ft, self.fs, self.counts["images"])

    def as_dict(self):
        """Plain JSON-able numbers; computation in percent of KD (0.0 before the first batch)."""
        spent, kd = self.flops_spent(), self.flops_kd()
        return {
            **self.counts,
            "flops_spent": spent,
            "flops_kd": kd,
            "computation": 100 * spent / kd if kd else 0.0,
        }

    def state_dict(self):
        return {"ft": self.ft, "fs": self.fs, **self.counts}

    def load_state_dict(self, state):
        # Counts priced at other FLOPs would silently mix two pairs' accounting.
        if (state["ft"], state["fs"]) != (self.ft, self.fs):
            raise ValueError(
                f"meter state is for Ft={state['ft']}, Fs={state['fs']}, this run has Ft={self.ft}, Fs={self.fs}"
            )
        self.counts = {key: state[key] for key in self.COUNTS}


def parse_args(argv):
    parser = ArgumentParser(
        prog="python -m utils.computation",
        description="UNIXKD training computation relative to conventional KD (paper's count).",
    )
    parser.add_argument("--teacher", help="teacher architecture, a models.model_dict name")
    parser.add_argument("--student", help="student architecture, a models.model_dict name")
    parser.add_argument("--k", type=int, default=48, help="images per batch the teacher sees and the student trains on")
    parser.add_argument("--b", type=int, default=32, help="images kept un-mixed (checked; it does not change the cost)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--paper-table", action="store_true", help="the 12 published pairs next to the paper's numbers")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {teacher, student, ft_fs, computation}")
    args = parser.parse_args(argv)
    check_sizes(args.batch_size, args.k, args.b)
    if not args.paper_table and not (args.teacher and args.student):
        raise UserError("give --teacher and --student, or --paper-table")
    return args


def check_sizes(batch_size, k, b):
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be a positive integer")
    for flag, value in (("--k", k), ("--b", b)):
        if not 1 <= value <= batch_size:
            raise UserError(f"{flag} {value}: must be between 1 and the batch size {batch_size}")


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


def format_pair(row, args):
    width = max(len(row["teacher"]), len(row["student"]))
    return "\n".join(
        [
            f"teacher {row['teacher']:<{width}}  Ft = {row['ft'] / 1e6:9.2f} M MACs (forward, one 32x32 image)",
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


def json_row(row):
    # Two decimals: the paper's precision.
    return {
        "teacher": row["teacher"],
        "student": row["student"],
        "ft_fs": round(row["ft_fs"], 2),
        "computation": round(row["computation"], 2),
    }


def main(argv=None):
    args = parse_args(argv)
    pairs = [pair[:2] for pair in PAPER_PAIRS] if args.paper_table else [(args.teacher, args.student)]
    for teacher, student in pairs:
        check_arch(teacher, "--teacher")
        check_arch(student, "--student")
    rows = [pair_costs(teacher, student, args.batch_size, args.k) for teacher, student in pairs]
    if args.json:
        print(json.dumps([json_row(row) for row in rows], indent=2))
    elif args.paper_table:
        print(format_paper_table(rows, args))
    else:
        print(format_pair(rows[0], args))
    return 0


if __name__ == "__main__":
    run_main(main)
