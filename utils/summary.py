"""The paper's results table from our own student runs: accuracy and computation per pair and method.

    python -m utils.summary [EXPERIMENTS_DIR] [--plot FILE.png]

Reads EXPERIMENTS_DIR/v0_student_*/summary.json (written each epoch by the training script),
groups finished runs by (teacher, student, method) and prints mean +- std over seeds.
"""

import itertools
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from utils.computation import PAPER_PAIRS
from utils.cli import ArgumentParser, run_main
from utils.errors import UserError
from utils.steps import DistillConfig

RUN_GLOB = "v0_student_*/summary.json"
KD = "KD"


@dataclass(frozen=True)
class Run:
    """What the table needs from one run's summary.json."""

    name: str
    teacher: str
    student: str
    method: str
    finished: bool
    epochs_done: int
    epochs: int
    best_acc: float
    computation: float
    ft_fs: float


@dataclass(frozen=True)
class MethodResult:
    """One table cell: a method's runs on one pair, over seeds."""

    method: str
    runs: int
    acc_mean: float
    acc_std: float
    computation: float


def method_name(args):
    """'KD' for conventional KD (the training step's own test: random order, all kept, none mixed),
    else the UNIXKD setting."""
    config = DistillConfig(batch_size=args["batch_size"], k=args["k"], b=args["b"], w=args["w"],
                           strategy=args["strategy"], mix_strategy=args.get("mix_strategy", 2))
    if config.conventional_kd:
        name = KD
    else:
        name = f"UNIXKD (S{args['strategy']} k{args['k']} b{args['b']} w{args['w']:g})"
    # The paper's runs all use these settings; an ablation must not be averaged into them.
    for key, label, default in (("mix_strategy", "mix", 2), ("T", "T", 4.0), ("ce_weight", "ce", 0.0),
                                ("kd_weight", "kd", 1.0)):
        if args.get(key, default) != default:
            name += f" {label}{args[key]:g}"
    if args.get("other_distill"):
        name += f" + {args['other_distill']}"
    return name


def method_order(method):
    """KD first (the reference at 100 %), then the UNIXKD settings alphabetically."""
    return (method != KD, method)


def parse_run(name, summary):
    """A Run from a summary.json's content; KeyError, TypeError or ValueError when it is malformed."""
    args = summary["args"]
    flops = summary["flops"]
    return Run(
        name=name,
        teacher=str(summary["teacher_arch"]),
        student=str(summary["student_arch"]),
        method=method_name(args),
        finished=bool(summary["finished"]),
        epochs_done=int(summary["epochs_done"]),
        epochs=int(args["epoch"]),
        best_acc=float(summary["best_acc"]),
        computation=float(summary["computation"]["computation"]),
        ft_fs=flops["teacher"] / flops["student"],
    )


def load_runs(experiments_dir):
    """(runs, warnings): every readable run under experiments_dir, and one line per file skipped."""
    runs, warnings = [], []
    for path in sorted(Path(experiments_dir).glob(RUN_GLOB)):
        try:
            runs.append(parse_run(path.parent.name, json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as error:
            # A run may be writing its file right now; one bad file must not hide the others.
            warnings.append(f"warning: skipping {path}: {type(error).__name__}: {error}")
    return runs, warnings


def pair_order(pair):
    """The paper's pairs in the paper's order, then any others alphabetically."""
    paper = [(teacher, student) for teacher, student, _, _ in PAPER_PAIRS]
    return (paper.index(pair), pair) if pair in paper else (len(paper), pair)


def group_finished(runs):
    """{(teacher, student): {method: [runs]}} over finished runs; pairs ordered as in the paper, KD first."""
    groups = {}
    for run in runs:
        if run.finished:
            groups.setdefault((run.teacher, run.student), {}).setdefault(run.method, []).append(run)
    return {
        pair: dict(sorted(methods.items(), key=lambda item: method_order(item[0])))
        for pair, methods in sorted(groups.items(), key=lambda item: pair_order(item[0]))
    }


def summarize(method, runs):
    accs = [run.best_acc for run in runs]
    return MethodResult(
        method=method,
        runs=len(runs),
        acc_mean=statistics.mean(accs),
        # Sample standard deviation over seeds; a single run has none to report.
        acc_std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
        computation=statistics.mean(run.computation for run in runs),
    )


def table_results(groups):
    """{pair: (Ft/Fs, [MethodResult])}: what the table and the plot show."""
    return {
        pair: (next(iter(methods.values()))[0].ft_fs, [summarize(method, runs) for method, runs in methods.items()])
        for pair, methods in groups.items()
    }


def format_table(results):
    lines = [
        "accuracy: best test top-1 % of each run (best_acc), mean +- sample std over seeds (n runs)",
        "computation: training FLOPs relative to conventional KD (%), mean over runs",
        f"{'teacher -> student':<26} {'Ft/Fs':>7}  {'method':<30} {'accuracy':<22} {'computation':>11}",
    ]
    for (teacher, student), (ft_fs, method_results) in results.items():
        pair, ratio = f"{teacher} -> {student}", f"{ft_fs:7.2f}"
        for result in method_results:
            accuracy = f"{result.acc_mean:.2f} +- {result.acc_std:.2f} (n={result.runs})"
            lines.append(f"{pair:<26} {ratio:>7}  {result.method:<30} {accuracy:<22} {result.computation:9.2f} %")
            pair, ratio = "", ""  # the pair is named on its first row only
    return lines


def format_in_progress(runs):
    return [
        f"{run.name}: {run.teacher} -> {run.student} {run.method}: in progress ({run.epochs_done}/{run.epochs})"
        for run in runs
        if not run.finished
    ]


def load_pyplot():
    # matplotlib is optional (not in requirements): only --plot needs it.
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from None
    return pyplot


def plot_results(results, path, pyplot):
    """Accuracy against computation: colour = pair, marker = method, error bar = std over seeds."""
    from matplotlib.lines import Line2D

    methods = sorted({r.method for _, method_results in results.values() for r in method_results}, key=method_order)
    markers = dict(zip(methods, itertools.cycle("osD^v<>ph*")))
    figure, axes = pyplot.subplots(figsize=(9, 6))
    colours = itertools.cycle(pyplot.get_cmap("tab20").colors)
    pair_handles = []
    for colour, ((teacher, student), (_, method_results)) in zip(colours, results.items()):
        for result in method_results:
            axes.errorbar(
                result.computation,
                result.acc_mean,
                yerr=result.acc_std,
                color=colour,
                marker=markers[result.method],
                capsize=3,
            )
        pair_handles.append(Line2D([], [], color=colour, marker="o", linestyle="none", label=f"{teacher} -> {student}"))
    method_handles = [Line2D([], [], color="grey", marker=markers[m], linestyle="none", label=m) for m in methods]
    # Two legends beside the axes: which colour is which pair, which marker is which method.
    axes.add_artist(axes.legend(handles=pair_handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small"))
    axes.legend(handles=method_handles, loc="lower left", bbox_to_anchor=(1.01, 0), fontsize="small")
    axes.set_xlabel("training computation relative to KD (%)")
    axes.set_ylabel("best test top-1 accuracy (%)")
    axes.set_title("CIFAR-100: accuracy against computation")
    axes.grid(alpha=0.3)
    figure.savefig(path, bbox_inches="tight", dpi=120)
    pyplot.close(figure)


def parse_args(argv):
    parser = ArgumentParser(prog="python -m utils.summary", description=__doc__.splitlines()[0])
    parser.add_argument("experiments_dir", nargs="?", default="experiments", help="default: ./experiments")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw accuracy against computation (needs matplotlib)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pyplot = load_pyplot() if args.plot else None
    runs, warnings = load_runs(args.experiments_dir)
    for warning in warnings:
        print(warning, file=sys.stderr)
    if not runs:
        print(f"no student runs found: nothing matches {Path(args.experiments_dir) / RUN_GLOB}")
        return 0
    results = table_results(group_finished(runs))
    print("\n".join(format_table(results)) if results else "no finished runs yet")
    in_progress = format_in_progress(runs)
    if in_progress:
        print("\nin progress:\n" + "\n".join(in_progress))
    if pyplot and results:
        plot_results(results, args.plot, pyplot)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    run_main(main)
