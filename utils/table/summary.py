"""The paper's results table from our own runs: every column, next to the published figures.

    python -m utils.summary [EXPERIMENTS_DIR] [--plot FILE.png] [--all]

Reads EXPERIMENTS_DIR/teacher_*/summary.json (teacher.py: the teachers, and the students trained
alone; or a published teacher imported by `python -m utils.teachers import`) and
EXPERIMENTS_DIR/v0_student_*/summary.json (student_v0.py), both written each epoch. Per pair distilled
here: the teacher's accuracy, the student's trained alone, Ft/Fs, KD, and each UNIXKD setting with its
computation; finished runs only, the best and the last epoch's test accuracy, each mean +- std over
seeds, the best beside the paper's figure (utils.table.paper) and our difference from it. Teacher.py runs of
no such pair, and runs still going, are listed after the table. Runs that depart from the paper's
protocol (utils.table.protocol: fewer epochs, synthetic data, ...) are left out with a line saying how many
and why; --all shows them in tables of their own.
"""

import itertools
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main
from utils.runs.runnames import SUMMARY_FILE, is_imported, row_name
from utils.table.paper import DISTILLER_FIGURES, PAPER_PAIRS
from utils.table.protocol import departures, imported_departures
from utils.training.steps import DistillConfig
from utils.unix_settings import UNIXKD_FLAGS

RUN_GLOBS = (f"teacher_*/{SUMMARY_FILE}", f"v0_student_*/{SUMMARY_FILE}")
KD = "KD"
ALONE = "trained alone"  # a teacher.py run: the network learns from the labels only
PUBLISHED = "published checkpoint"  # a teacher imported by `python -m utils.teachers import`
TEACHER_ROW, ALONE_ROW = "teacher", "student alone"  # a pair's rows of phase-1 runs
TEACHER_LABELS = {PUBLISHED: "teacher (published checkpoint)", ALONE: "teacher (trained here)"}
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
    best_acc: Optional[float]            # None for a published teacher whose accuracy is unknown
    last_acc: Optional[float] = None     # the last epoch's; None for a published teacher
    computation: Optional[float] = None  # students only: % of KD's training computation
    ft_fs: Optional[float] = None
    departures: tuple = ()  # how the run departs from the paper's protocol (utils.table.protocol); () if it does not
    best_acc5: Optional[float] = None  # ImageNet: top-5 of the best top-1 epoch
    last_acc5: Optional[float] = None


@dataclass(frozen=True)
class MethodResult:
    """One table cell: a method's runs on one pair (or one architecture trained alone), over seeds."""

    method: str
    runs: int
    acc_mean: Optional[float]   # best test accuracy; None where no run has one
    acc_std: Optional[float]
    computation: Optional[float]
    last_mean: Optional[float] = None  # last epoch's test accuracy; None unless every run has one
    last_std: Optional[float] = None
    top5: Optional[tuple] = None  # ImageNet: (best mean, std, last mean, std) of top-5; None unless every run has it


@dataclass(frozen=True)
class PairResults:
    """One pair's rows."""

    ft_fs: Optional[float]             # measured by its student runs
    teachers: list                     # [MethodResult] of the teacher architecture: PUBLISHED, ALONE
    alone: Optional[MethodResult]      # teacher.py runs of the student architecture
    methods: list                      # [MethodResult] of the student runs, KD first


def method_name(args, teacher=None):
    """The table's row of a student run (utils.runs.runnames.row_name), told conventional KD by the training
    step's own test."""
    config = DistillConfig(batch_size=args["batch_size"], k=args["k"], b=args["b"], w=args["w"],
                           strategy=args["strategy"], mix_strategy=args.get("mix_strategy", 2))
    return row_name(args, teacher, config.conventional_kd)


UNIXKD = method_name({**UNIXKD_FLAGS, "batch_size": 64})  # the setting of the paper's UNIXKD column


def method_order(method):
    """KD first (the reference at 100 %), then the UNIXKD settings alphabetically."""
    return (method != KD, method)


def optional_float(value):
    return None if value is None else float(value)


def parse_imported(name, summary):
    """A published teacher: finished, trained elsewhere, one set of weights (no last epoch here)."""
    return Run(name=name, teacher=None, student=str(summary["arch"]), method=PUBLISHED, finished=True,
               epochs_done=0, epochs=0, best_acc=optional_float(summary["best_acc"]),
               departures=tuple(imported_departures(summary)))


def parse_run(name, summary):
    """A Run from a summary.json's content; KeyError, TypeError or ValueError when it is malformed."""
    if is_imported(summary):
        return parse_imported(name, summary)
    args = summary["args"]
    common = dict(name=name, finished=bool(summary["finished"]), epochs_done=int(summary["epochs_done"]),
                  epochs=int(args["epoch"]), best_acc=optional_float(summary["best_acc"]),
                  last_acc=optional_float(summary.get("last_acc")), departures=tuple(departures(summary)),
                  best_acc5=optional_float(summary.get("best_acc5")), last_acc5=optional_float(summary.get("last_acc5")))
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


def mean_std(values):
    """(mean, sample standard deviation) over seeds, (None, None) without values; one value has std 0."""
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(method, runs):
    computations = [run.computation for run in runs if run.computation is not None]
    acc_mean, acc_std = mean_std([run.best_acc for run in runs if run.best_acc is not None])
    lasts = [run.last_acc for run in runs if run.last_acc is not None]
    # A mean of the last epochs over some runs only would not be comparable with the best column's.
    last_mean, last_std = mean_std(lasts) if len(lasts) == len(runs) else (None, None)
    return MethodResult(method=method, runs=len(runs), acc_mean=acc_mean, acc_std=acc_std,
                        computation=statistics.mean(computations) if computations else None,
                        last_mean=last_mean, last_std=last_std, top5=top5_result(runs))


def top5_result(runs):
    """(best mean, std, last mean, std) of top-5 where every run has it (ImageNet runs), else None."""
    if any(run.best_acc5 is None or run.last_acc5 is None for run in runs):
        return None
    return (*mean_std([run.best_acc5 for run in runs]), *mean_std([run.last_acc5 for run in runs]))


def distilled_pairs(runs):
    """The pairs with a student run in this folder, finished or not: the table's pairs (a paper pair
    without one gets no rows, so a teacher.py run is never shown under a pair it was not run for)."""
    return sorted({(run.teacher, run.student) for run in runs if run.teacher is not None}, key=pair_order)


def phase_one_results(runs):
    """{architecture: {PUBLISHED or ALONE: MethodResult}} over the finished teacher.py and imported runs."""
    groups = {}
    for run in runs:
        if run.finished and run.teacher is None:
            groups.setdefault(run.student, {}).setdefault(run.method, []).append(run)
    return {arch: {method: summarize(method, arch_runs) for method, arch_runs in methods.items()}
            for arch, methods in groups.items()}


def table_results(runs):
    """{pair: PairResults} for every pair distilled here, the paper's first in the paper's order."""
    groups = group_finished(runs)
    phase_one = phase_one_results(runs)
    return {
        pair: PairResults(
            ft_fs=next(iter(groups[pair].values()))[0].ft_fs if pair in groups else None,
            teachers=[phase_one[pair[0]][method] for method in TEACHER_LABELS if method in phase_one.get(pair[0], {})],
            alone=phase_one.get(pair[1], {}).get(ALONE),  # a published checkpoint is no student trained alone
            methods=[summarize(method, runs) for method, runs in groups.get(pair, {}).items()],
        )
        for pair in distilled_pairs(runs)
    }


def unpaired_results(runs, results):
    """[(architecture, MethodResult)]: finished phase-1 runs that no pair of the table shows."""
    shown = {(pair[0], method.method) for pair, result in results.items() for method in result.teachers}
    shown |= {(pair[1], ALONE) for pair, result in results.items() if result.alone}
    return [(arch, result) for arch, methods in sorted(phase_one_results(runs).items())
            for method, result in methods.items() if (arch, method) not in shown]


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


def format_accuracy(mean, std, runs=None):
    if mean is None:
        return "-"
    return f"{mean:.2f} +- {std:.2f}" + (f" (n={runs})" if runs is not None else "")


def format_row(pair, row, label, result):
    """A row of the table: `row` picks the paper's figure (TEACHER_ROW, ALONE_ROW or a method)."""
    paper_acc, paper_computation = published(pair, row)
    best = format_accuracy(result.acc_mean, result.acc_std, result.runs)
    paper = "-"
    if paper_acc is not None and result.acc_mean is not None:
        paper = f"{paper_acc:.2f} {result.acc_mean - paper_acc:+6.2f}"
    last = format_accuracy(result.last_mean, result.last_std)
    computation = with_paper(result.computation, paper_computation, " %") if result.computation is not None else ""
    return f"{label:<30} {best:<22} {paper:<14} {last:<16} {computation:<26}{format_top5(result)}".rstrip()


def format_top5(result) -> str:
    """ImageNet's second figure, after the row: the top-5 of the best and of the last epoch."""
    if result.top5 is None:
        return ""
    best_mean, best_std, last_mean, last_std = result.top5
    return f" top-5 best {format_accuracy(best_mean, best_std)}, last {format_accuracy(last_mean, last_std)}"


def pair_rows(result):
    """(row, label, MethodResult) of a pair: its teachers, the student alone, then each method."""
    rows = [(TEACHER_ROW, TEACHER_LABELS[teacher.method], teacher) for teacher in result.teachers]
    rows += [(ALONE_ROW, ALONE_ROW, result.alone)] if result.alone else []
    return rows + [(method.method, method.method, method) for method in result.methods]


def format_table(results):
    lines = [
        "best: best test top-1 % over the epochs of each run (best_acc, what the paper reports), mean +- sample "
        "std over seeds (n runs); last: the last epoch's; finished runs only",
        "paper: the published figure and our difference from it; teacher and student alone: teacher.py runs "
        "or an imported published checkpoint",
        "computation: training FLOPs relative to conventional KD (%), mean over runs (paper, difference)",
        f"{'teacher -> student':<26} {'Ft/Fs (paper, diff)':<22} {'row':<30} {'best':<22} {'paper diff':<14} "
        f"{'last':<16} computation",
    ]
    for pair, result in results.items():
        paper = PAPER.get(pair)
        head = f"{pair[0]} -> {pair[1]}"
        ratio = with_paper(result.ft_fs, paper.ft_fs if paper else None)
        for row, label, row_result in pair_rows(result):
            lines.append(f"{head:<26} {ratio:<22} {format_row(pair, row, label, row_result)}")
            head, ratio = "", ""  # the pair is named on its first row only
    return lines


def format_unpaired(unpaired):
    """The finished phase-1 runs of no pair above (no student distilled here from or into them yet)."""
    lines = []
    for arch, result in unpaired:
        label = TEACHER_LABELS[PUBLISHED] if result.method == PUBLISHED else ALONE
        best = format_accuracy(result.acc_mean, result.acc_std, result.runs)
        last = format_accuracy(result.last_mean, result.last_std)
        lines.append(f"{arch:<26} {label:<30} best {best:<22} last {last:<16}{format_top5(result)}".rstrip())
    return lines


def format_in_progress(runs):
    return [
        f"{run.name}: {run.student} {ALONE if run.teacher is None else f'from {run.teacher}, {run.method}'}: "
        f"in progress ({run.epochs_done}/{run.epochs})"
        for run in runs
        if not run.finished
    ]


def by_departures(runs) -> dict:
    """{departures: [runs]}: the protocol's runs under (), each other combination under its own key."""
    groups = {}
    for run in runs:
        groups.setdefault(run.departures, []).append(run)
    return dict(sorted(groups.items()))


def departure_label(departures) -> str:
    return ", ".join(departures)


def format_left_out(groups) -> list:
    """One line on the finished runs outside the protocol, which the table leaves out without --all."""
    counts = {departure_label(key): sum(run.finished for run in runs) for key, runs in groups.items() if key}
    counts = {label: count for label, count in counts.items() if count}
    if not counts:
        return []
    why = "; ".join(f"{label}: {count}" for label, count in counts.items())
    total = sum(counts.values())
    return [f"left out: {total} finished run{'s' if total > 1 else ''} outside the paper's protocol "
            f"({why}); --all shows them in tables of their own"]


def format_off_protocol_tables(groups) -> list:
    """With --all: a table for each way runs depart from the protocol, headed by what differs; its pairs
    are marked with a * and compared with no published figure."""
    lines = []
    for key, runs in groups.items():
        results = table_results(runs)
        marked = {(teacher, f"{student} *"): result for (teacher, student), result in results.items()}
        rows = (format_table(marked) if marked else []) + format_unpaired(unpaired_results(runs, results))
        if key and rows:
            lines += ["", f"* not the paper's protocol ({departure_label(key)}): no published figure applies", *rows]
    return lines


def plotted_results(groups) -> dict:
    """The pairs to plot, each group's labelled with what departs from the protocol."""
    return {(teacher, f"{student} [{departure_label(key)}]" if key else student): result
            for key, runs in groups.items() for (teacher, student), result in table_results(runs).items()
            if result.methods}


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
    parser.add_argument("experiments_dir", nargs="?", help="default: ./experiments")
    # Also as the flag the training scripts and utils.jobs take.
    parser.add_argument("--experiments-dir", dest="experiments_dir_flag", metavar="DIR", help="the same folder")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw accuracy against computation (needs matplotlib)")
    parser.add_argument("--all", action="store_true",
                        help="also show the runs that depart from the paper's protocol (fewer epochs, other data, "
                             "other hyper-parameters), in tables of their own headed by what differs")
    args = parser.parse_args(argv)
    if args.experiments_dir and args.experiments_dir_flag and args.experiments_dir != args.experiments_dir_flag:
        raise UserError(f"two experiments folders, {args.experiments_dir} and --experiments-dir "
                        f"{args.experiments_dir_flag}: give one")
    args.experiments_dir = args.experiments_dir or args.experiments_dir_flag or "experiments"
    return args


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.experiments_dir).is_dir():
        raise UserError(f"{args.experiments_dir} is not a folder; give the experiments folder the runs wrote to "
                        f"(default ./experiments)")
    pyplot = load_pyplot() if args.plot else None
    runs, warnings = load_runs(args.experiments_dir)
    for warning in warnings:
        print(warning, file=sys.stderr)
    if not runs:
        patterns = " or ".join(str(Path(args.experiments_dir) / pattern) for pattern in RUN_GLOBS)
        print(f"no runs found: nothing matches {patterns}")
        return 0
    groups = by_departures(runs)
    protocol = groups.get((), [])
    results = table_results(protocol)
    print("\n".join(format_table(results)) if results else "no distilled student runs that follow the protocol yet")
    unpaired = format_unpaired(unpaired_results(protocol, results))
    if unpaired:
        print("\nteacher.py runs and published teachers of no pair above:\n" + "\n".join(unpaired))
    for line in format_off_protocol_tables(groups) if args.all else format_left_out(groups):
        print(line)
    in_progress = format_in_progress(runs)
    if in_progress:
        print("\nin progress:\n" + "\n".join(in_progress))
    distilled = plotted_results(groups if args.all else {(): groups.get((), [])})
    if pyplot and distilled:
        plot_results(distilled, args.plot, pyplot)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    run_main(main)
