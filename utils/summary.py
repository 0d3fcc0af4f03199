"""The paper's results table from our own runs: every column, next to the published figures.

    python -m utils.summary [EXPERIMENTS_DIR] [--plot FILE.png]

Reads EXPERIMENTS_DIR/teacher_*/summary.json (teacher.py: the teachers, and the students trained
alone) and EXPERIMENTS_DIR/v0_student_*/summary.json (student_v0.py), both written each epoch. Per
pair: the teacher's accuracy, the student's trained alone, Ft/Fs, KD, and each UNIXKD setting with its
computation; finished runs only, mean +- std over seeds, beside the paper's figure (utils.paper) and
our difference from it. Runs still going are listed after the table.
"""

import itertools
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from utils.cli import ArgumentParser, run_main
from utils.errors import UserError
from utils.distillers import KD as KD_DISTILLER
from utils.paper import DISTILLER_FIGURES, PAPER_PAIRS, UNIXKD_FLAGS
from utils.runnames import SUMMARY_FILE, named_settings
from utils.steps import DistillConfig

RUN_GLOBS = (f"teacher_*/{SUMMARY_FILE}", f"v0_student_*/{SUMMARY_FILE}")
KD = "KD"
ALONE = "trained alone"  # a teacher.py run: the network learns from the labels only
TEACHER_ROW, ALONE_ROW = "teacher", "student alone"  # a pair's rows of teacher.py runs
PAPER = {(pair.teacher, pair.student): pair for pair in PAPER_PAIRS}


@dataclass(frozen=True)
class Run:
    """What the table needs from one run's summary.json."""

    name: str
    teacher: Optional[str]  # None for a teacher.py run
    student: str            # the network trained (teacher.py's --arch)
    method: str
    finished: bool
    epochs_done: int
    epochs: int
    best_acc: float
    computation: Optional[float] = None  # students only: % of KD's training computation
    ft_fs: Optional[float] = None


@dataclass(frozen=True)
class MethodResult:
    """One table cell: a method's runs on one pair (or one architecture trained alone), over seeds."""

    method: str
    runs: int
    acc_mean: float
    acc_std: float
    computation: Optional[float]


@dataclass(frozen=True)
class PairResults:
    """One pair's rows."""

    ft_fs: Optional[float]             # measured by its student runs
    teacher: Optional[MethodResult]    # teacher.py runs of the teacher architecture
    alone: Optional[MethodResult]      # teacher.py runs of the student architecture
    methods: list                      # [MethodResult] of the student runs, KD first


def method_name(args, teacher=None):
    """'KD' for conventional KD (the training step's own test: random order, all kept, none mixed),
    else the UNIXKD setting; with another distiller, 'DKD', 'UNIX + DKD' (UNIXKD's setting) or
    'UNIX (setting) + DKD'. `teacher` (the architecture) names the pair whose published settings count
    as the defaults."""
    config = DistillConfig(batch_size=args["batch_size"], k=args["k"], b=args["b"], w=args["w"],
                           strategy=args["strategy"], mix_strategy=args.get("mix_strategy", 2))
    distiller = args.get("distill") or KD_DISTILLER
    setting = f"(S{args['strategy']} k{args['k']} b{args['b']} w{args['w']:g})"
    if config.conventional_kd:
        name = distiller
    elif distiller == KD_DISTILLER:
        name = f"UNIXKD {setting}"
    elif all(args[key] == value for key, value in UNIXKD_FLAGS.items()):
        name = f"UNIX + {distiller}"
    else:
        name = f"UNIX {setting} + {distiller}"
    # The paper's runs all use these settings; an ablation must not be averaged into them.
    for label, value in named_settings(args, teacher):
        name += f" {label}{value:g}"
    if args.get("other_distill"):
        name += f" + {args['other_distill']}"
    return name


UNIXKD = method_name({**UNIXKD_FLAGS, "batch_size": 64})  # the setting of the paper's UNIXKD column


def method_order(method):
    """KD first (the reference at 100 %), then the UNIXKD settings alphabetically."""
    return (method != KD, method)


def parse_run(name, summary):
    """A Run from a summary.json's content; KeyError, TypeError or ValueError when it is malformed."""
    args = summary["args"]
    common = dict(name=name, finished=bool(summary["finished"]), epochs_done=int(summary["epochs_done"]),
                  epochs=int(args["epoch"]), best_acc=float(summary["best_acc"]))
    if "student_arch" not in summary:
        return Run(teacher=None, student=str(summary["arch"]), method=ALONE, **common)
    flops = summary["flops"]
    return Run(
        teacher=str(summary["teacher_arch"]),
        student=str(summary["student_arch"]),
        method=method_name(args, str(summary["teacher_arch"])),
        computation=float(summary["computation"]["computation"]),
        ft_fs=flops["teacher"] / flops["student"],
        **common,
    )


def load_runs(experiments_dir):
    """(runs, warnings): every readable run under experiments_dir, and one line per file skipped."""
    runs, warnings = [], []
    for path in sorted(path for pattern in RUN_GLOBS for path in Path(experiments_dir).glob(pattern)):
        try:
            runs.append(parse_run(path.parent.name, json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as error:
            # A run may be writing its file right now; one bad file must not hide the others.
            warnings.append(f"warning: skipping {path}: {type(error).__name__}: {error}")
    return runs, warnings


def pair_order(pair):
    """The paper's pairs in the paper's order, then any others alphabetically."""
    paper = list(PAPER)
    return (paper.index(pair), pair) if pair in paper else (len(paper), pair)


def group_finished(runs):
    """{(teacher, student): {method: [runs]}} over finished student runs; pairs as in the paper, KD first."""
    groups = {}
    for run in runs:
        if run.finished and run.teacher is not None:
            groups.setdefault((run.teacher, run.student), {}).setdefault(run.method, []).append(run)
    return {
        pair: dict(sorted(methods.items(), key=lambda item: method_order(item[0])))
        for pair, methods in sorted(groups.items(), key=lambda item: pair_order(item[0]))
    }


def summarize(method, runs):
    accs = [run.best_acc for run in runs]
    computations = [run.computation for run in runs if run.computation is not None]
    return MethodResult(
        method=method,
        runs=len(runs),
        acc_mean=statistics.mean(accs),
        # Sample standard deviation over seeds; a single run has none to report.
        acc_std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
        computation=statistics.mean(computations) if computations else None,
    )


def table_results(runs):
    """{pair: PairResults}: the paper's pairs with any finished run, and any other pair distilled here."""
    groups = group_finished(runs)
    alone = {}
    for run in runs:
        if run.finished and run.teacher is None:
            alone.setdefault(run.student, []).append(run)
    pairs = sorted(set(groups) | {pair for pair in PAPER if set(pair) & set(alone)}, key=pair_order)
    return {
        pair: PairResults(
            ft_fs=next(iter(groups[pair].values()))[0].ft_fs if pair in groups else None,
            teacher=summarize(ALONE, alone[pair[0]]) if pair[0] in alone else None,
            alone=summarize(ALONE, alone[pair[1]]) if pair[1] in alone else None,
            methods=[summarize(method, runs) for method, runs in groups.get(pair, {}).items()],
        )
        for pair in pairs
    }


def published(pair, row):
    """The paper's (accuracy, computation) for a row of a pair; None where it gives none."""
    paper = PAPER.get(pair)
    if row in DISTILLER_FIGURES.get(pair, {}):  # DKD's and LSKD's own papers, conventional KD's computation
        return DISTILLER_FIGURES[pair][row], 100.0
    if paper is None:
        return None, None
    return {TEACHER_ROW: (paper.teacher_acc, None), ALONE_ROW: (paper.student_acc, None),
            KD: (paper.kd_acc, 100.0), UNIXKD: (paper.unixkd_acc, paper.computation)}.get(row, (None, None))


def with_paper(ours, paper, unit=""):
    """'ours', or 'ours (paper, +diff)' where the paper gives a figure; '-' where we have none."""
    if ours is None:
        return "-"
    if paper is None:
        return f"{ours:.2f}{unit}"
    return f"{ours:.2f}{unit} ({paper:.2f}, {ours - paper:+.2f})"


def format_row(pair, row, result):
    paper_acc, paper_computation = published(pair, row)
    accuracy = f"{result.acc_mean:.2f} +- {result.acc_std:.2f} (n={result.runs})"
    paper = f"{paper_acc:.2f} {result.acc_mean - paper_acc:+6.2f}" if paper_acc is not None else "-"
    computation = with_paper(result.computation, paper_computation, " %") if result.computation is not None else ""
    return f"{row:<28} {accuracy:<22} {paper:<14} {computation}".rstrip()


def format_table(results):
    lines = [
        "accuracy: best test top-1 % of each run (best_acc), mean +- sample std over seeds (n runs); "
        "finished runs only",
        "paper: the published figure and our difference from it; teacher and student alone: teacher.py runs",
        "computation: training FLOPs relative to conventional KD (%), mean over runs (paper, difference)",
        f"{'teacher -> student':<26} {'Ft/Fs (paper, diff)':<22} {'row':<28} {'accuracy':<22} {'paper diff':<14} "
        "computation",
    ]
    for pair, result in results.items():
        paper = PAPER.get(pair)
        head = f"{pair[0]} -> {pair[1]}"
        ratio = with_paper(result.ft_fs, paper.ft_fs if paper else None)
        rows = [(TEACHER_ROW, result.teacher), (ALONE_ROW, result.alone)]
        rows += [(method.method, method) for method in result.methods]
        for row, row_result in rows:
            if row_result is not None:
                lines.append(f"{head:<26} {ratio:<22} {format_row(pair, row, row_result)}")
                head, ratio = "", ""  # the pair is named on its first row only
    return lines


def format_in_progress(runs):
    return [
        f"{run.name}: {run.student} {ALONE if run.teacher is None else f'from {run.teacher}, {run.method}'}: "
        f"in progress ({run.epochs_done}/{run.epochs})"
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

    methods = sorted({r.method for pair in results.values() for r in pair.methods}, key=method_order)
    markers = dict(zip(methods, itertools.cycle("osD^v<>ph*")))
    figure, axes = pyplot.subplots(figsize=(9, 6))
    colours = itertools.cycle(pyplot.get_cmap("tab20").colors)
    pair_handles = []
    for colour, ((teacher, student), pair_results) in zip(colours, results.items()):
        for result in pair_results.methods:
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
        patterns = " or ".join(str(Path(args.experiments_dir) / pattern) for pattern in RUN_GLOBS)
        print(f"no runs found: nothing matches {patterns}")
        return 0
    results = table_results(runs)
    print("\n".join(format_table(results)) if results else "no finished runs yet")
    in_progress = format_in_progress(runs)
    if in_progress:
        print("\nin progress:\n" + "\n".join(in_progress))
    distilled = {pair: result for pair, result in results.items() if result.methods}
    if pyplot and distilled:
        plot_results(distilled, args.plot, pyplot)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    run_main(main)
