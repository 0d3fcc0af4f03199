"""The paper's results table from our own runs: every column, next to the published figures.

    python -m utils.summary [EXPERIMENTS_DIR] [--plot FILE.png] [--all]

The folder: the argument, --experiments-dir, or the EXPERIMENTS_DIR variable the dispatchers read, else
./experiments. Reads EXPERIMENTS_DIR/teacher_*/summary.json (teacher.py: the teachers, and the students trained
alone; or a published teacher imported by `python -m utils.teachers import`) and
EXPERIMENTS_DIR/v0_student_*/summary.json (student_v0.py), both written each epoch. Per pair distilled
here: the teacher's accuracy, the student's trained alone, Ft/Fs, KD, and each UNIXKD setting with its
computation; finished runs only, the best and the last epoch's test accuracy, each mean +- std over
seeds, the best beside the paper's figure (utils.table.paper) and our difference from it. A run made with
--tag, or distilled from a teacher run other than teacher_<arch>, has a row of its own; a row never holds
two runs of one seed. Teacher.py runs of no such pair, and runs still going, are listed after the table.
Runs that depart from their dataset's protocol (utils.table.protocol: fewer epochs, synthetic data, ...) are
left out with a line saying how many and why; --all shows them in tables of their own. --plot draws the
figure (utils.table.plot).
"""

import json
import os
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from utils.distillers import IMAGENET
from utils.distillers import KD as KD_DISTILLER
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main
from utils.runs.report import forward_macs
from utils.runs.runnames import ALONE, SUMMARY_FILE, is_imported, recorded_batch_per_process, row_name, teacher_run_name
from utils.table import plot
from utils.table.paper import DISTILLER_FIGURES, PAPER_PAIRS
from utils.table.protocol import data_name, dataset, departures, imported_departures
from utils.table.runlist import DEFAULT_EXPERIMENTS_DIR
from utils.teachers.torchvision_zoo import is_torchvision_teacher
from utils.training.steps import DistillConfig
from utils.unix_settings import UNIXKD_FLAGS, default_unix_sizes

RUN_GLOBS = (f"teacher_*/{SUMMARY_FILE}", f"v0_student_*/{SUMMARY_FILE}")
KD = "KD"
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
    departures: tuple = ()  # how the run departs from its dataset's protocol (utils.table.protocol); () if it does not
    best_acc5: Optional[float] = None  # ImageNet: top-5 of the best top-1 epoch
    last_acc5: Optional[float] = None
    seed: Optional[int] = None         # None for a published teacher
    # What sets the run's row apart from its method's: ' from <teacher run>' (students of a teacher run other
    # than teacher_<arch>), ' --tag NAME', ' of N per process' (ImageNet's --k and --b given for another batch
    # than their own), and ' (<folder>)' for a second run of one seed; '' for the main row.
    variant: str = ""
    note: str = ""                     # the variant as the plot writes it beside the marker: 'teacher seed1', 'seed 0 #2'
    family: str = ""                   # students: the method without its settings (KD, UNIXKD, UNIX + DKD, ...)
    data: str = "CIFAR-100"            # what it trained on (utils.table.protocol.data_name)
    teacher_acc: Optional[float] = None  # students: their teacher's test accuracy, as they measured it
    of_main_teacher: bool = True         # students: distilled from teacher_<arch> (no ' from ...' variant)
    unix_main: str = ""                  # students: UNIXKD's main setting on their dataset and batch (unix_main_row)

    @property
    def row(self) -> str:
        """The row's label, what groups runs into one mean."""
        return self.method + self.variant


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
    variant: str = ""             # Run.variant of its runs
    family: str = ""              # Run.family of its runs
    note: str = ""                # Run.note of its runs
    unix_main: str = ""           # Run.unix_main of its first run

    @property
    def row(self) -> str:
        return self.method + self.variant


@dataclass(frozen=True)
class PairResults:
    """One pair's rows."""

    ft_fs: Optional[float]             # measured by its student runs
    teachers: list                     # [MethodResult] of the teacher architecture: PUBLISHED, ALONE, tagged ones
    alone: list                        # [MethodResult] of teacher.py runs of the student architecture
    methods: list                      # [MethodResult] of the student runs, KD first
    teacher_acc: Optional[float] = None  # the teacher_<arch> its students learned from, as they measured it
    data: str = "CIFAR-100"            # what its students trained on


def method_family(args, batch=None) -> str:
    """'KD' (or the distiller) for conventional distillation, 'UNIXKD' or 'UNIX + <distiller>' with UNIX:
    the method without its settings, one marker shape in the plot."""
    distiller = args.get("distill") or KD_DISTILLER
    if is_conventional(args, batch):
        return distiller
    return "UNIXKD" if distiller == KD_DISTILLER else f"UNIX + {distiller}"


def ranked_batch(args, batch=None) -> int:
    """The batch UNIX ranks: each process's own under DDP, for which --k and --b are given (`batch`: summary.json's
    batch_per_process; runs made before it was recorded kept it in their args as local_batch)."""
    return batch or recorded_batch_per_process({"args": args})


def is_conventional(args, batch=None) -> bool:
    """The training step's own test (random order, all kept, none mixed), on the batch it ranks (ranked_batch)."""
    return DistillConfig(batch_size=ranked_batch(args, batch), k=args["k"], b=args["b"], w=args["w"],
                         strategy=args["strategy"], mix_strategy=args.get("mix_strategy", 2)).conventional_kd


def method_name(args, teacher=None, batch=None):
    """The table's row of a student run (utils.runs.runnames.row_name), told conventional KD by the training
    step's own test."""
    return row_name(args, teacher, is_conventional(args, batch))


UNIXKD = method_name({**UNIXKD_FLAGS, "batch_size": 64})  # the setting of the paper's UNIXKD column


def unix_main_row(imagenet: bool, batch: int) -> str:
    """UNIXKD's main setting: the paper's on CIFAR-100; on ImageNet, where k and b follow each process's batch, its
    defaults for that batch (3/4 and 1/2 of it: 'UNIXKD (S3 k12 b8 w10)' on 16 images a process)."""
    if not imagenet:
        return UNIXKD
    k, b = default_unix_sizes(batch)
    return method_name({**UNIXKD_FLAGS, "k": k, "b": b, "batch_size": batch})


def other_sizes(args, imagenet: bool, batch: int) -> bool:
    """Whether an ImageNet UNIX run's --k and --b are not the defaults of its own batch: its row then names the
    batch (' of 64 per process'), so that '--k 24 --b 16' of 32 images (the defaults: three quarters kept) and of
    64 (three eighths kept) never share a row. The batch is free on ImageNet's protocol (utils.table.protocol)."""
    return imagenet and not is_conventional(args, batch) and (args["k"], args["b"]) != default_unix_sizes(batch)


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
                  best_acc5=optional_float(summary.get("best_acc5")), last_acc5=optional_float(summary.get("last_acc5")),
                  seed=args.get("seed"), data=data_name(summary))
    tag = f"--tag {args['tag']}" if args.get("tag") else ""  # recorded since --tag exists
    if "student_arch" not in summary:
        return Run(teacher=None, student=str(summary["arch"]), method=ALONE, variant=spaced(tag), note=tag, **common)
    (ft, fs), teacher = forward_macs(summary), str(summary["teacher_arch"])
    batch, imagenet = ranked_batch(args, summary.get("batch_per_process")), dataset(summary) == IMAGENET
    other_teacher = other_teacher_run(args.get("teacher_path"), teacher)
    per_process = other_sizes(args, imagenet, batch)
    return Run(
        teacher=teacher,
        student=str(summary["student_arch"]),
        method=method_name(args, teacher, batch),
        computation=float(summary["computation"]["computation"]),
        ft_fs=ft / fs,
        variant=spaced(other_teacher and f"from {other_teacher}", tag, per_process and f"of {batch} per process"),
        note=joined(teacher_note(other_teacher, teacher), tag, per_process and f"of {batch}"),
        of_main_teacher=not other_teacher,
        family=method_family(args, batch),
        teacher_acc=optional_float(summary.get("teacher_acc")),
        unix_main=unix_main_row(imagenet, batch),
        **common,
    )


def joined(*parts) -> str:
    """'part1 part2' of the parts given (a note), '' of none."""
    return " ".join(part for part in parts if part)


def spaced(*parts) -> str:
    """' part1 part2' of the parts given (a variant, as it follows the method's name), '' of none."""
    return "".join(f" {part}" for part in parts if part)


def other_teacher_run(teacher_path, teacher_arch: str) -> Optional[str]:
    """The folder of the teacher run a student learned from when it is not the one the dispatchers distil from
    (teacher_<arch>: seed 0, no --tag), so that its row is never that teacher's students' row; None for that one,
    and for a teacher named by a file outside a run folder or by torchvision's weights."""
    folder = teacher_run_folder(teacher_path)
    return folder if folder and folder != teacher_run_name(teacher_arch, 0) else None


def teacher_note(folder: Optional[str], teacher_arch: str) -> str:
    """The plot's short name of another teacher run: 'teacher seed1' for teacher_<arch>_seed1, 'teacher dali' for
    teacher_<arch>_dali; '' for the main one."""
    if not folder:
        return ""
    return "teacher " + folder.removeprefix(f"{teacher_run_name(teacher_arch, 0)}_")


def teacher_run_folder(teacher_path) -> Optional[str]:
    """The name of the teacher run folder a --teacher-path gives: the folder itself, or the one whose ckpt/ holds
    the checkpoint file; None for a torchvision teacher and for a file in a folder that is no teacher run (neither
    named teacher_... as teacher.py names its runs, nor holding a summary.json), such as /data/ckpt/resnet32x4.pth:
    the student's own folder names such a file by its label."""
    if not teacher_path or is_torchvision_teacher(teacher_path):
        return None
    path = Path(teacher_path)
    if path.suffix == ".pth":
        if path.parent.name != "ckpt":
            return None
        path = path.parent.parent
    return path.name if path.name.startswith("teacher_") or (path / SUMMARY_FILE).is_file() else None


def load_runs(experiments_dir):
    """(runs, warnings): every readable run under experiments_dir, and one line per file skipped or per seed
    run twice in one row."""
    runs, warnings = [], []
    for path in sorted(path for pattern in RUN_GLOBS for path in Path(experiments_dir).glob(pattern)):
        try:
            runs.append(parse_run(path.parent.name, json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as error:
            # A run may be writing its file right now; one bad file must not hide the others.
            warnings.append(f"warning: skipping {path}: {type(error).__name__}: {error}")
    runs, repeated = apart_repeated_seeds(runs)
    return runs, warnings + repeated


def apart_repeated_seeds(runs):
    """(runs, warnings): finished runs that share a row and a seed each get a row of their own, named by
    their folder, so that a mean over seeds never counts a seed twice (a copied run folder, a student of the
    teacher's last checkpoint beside one of its best)."""
    rows = {}
    for run in runs:
        if run.finished:
            rows.setdefault((run.teacher, run.student, run.row, run.departures, run.seed), []).append(run)
    numbers = {run.name: number for same in rows.values() if len(same) > 1 for number, run in enumerate(same, 1)}
    warnings = [f"warning: {len(same)} runs of seed {key[-1]} in one row ({describe_row(key)}): "
                f"{', '.join(run.name for run in same)}; each is shown in a row of its own, named by its folder"
                for key, same in rows.items() if len(same) > 1]
    # The plot numbers them in the warning's order: a folder name beside a marker would run across the panels.
    runs = [replace(run, variant=f"{run.variant} ({run.name})", note=joined(run.note, f"seed {run.seed} #{numbers[run.name]}"))
            if run.name in numbers else run for run in runs]
    return runs, warnings


def describe_row(key) -> str:
    teacher, student, row, _, _ = key
    return f"{student} {row}" if teacher is None else f"{teacher} -> {student}, {row}"


def pair_order(pair):
    """The paper's pairs in the paper's order, then any others alphabetically."""
    paper = list(PAPER)
    return (paper.index(pair), pair) if pair in paper else (len(paper), pair)


def group_finished(runs):
    """{(teacher, student): {row: [runs]}} over finished student runs; pairs as in the paper, KD first."""
    groups = {}
    for run in runs:
        if run.finished and run.teacher is not None:
            groups.setdefault((run.teacher, run.student), {}).setdefault(run.row, []).append(run)
    return {
        pair: dict(sorted(rows.items(), key=lambda item: row_order(item[1][0])))
        for pair, rows in sorted(groups.items(), key=lambda item: pair_order(item[0]))
    }


def row_order(run):
    """A method's main row, then its variants; KD's first."""
    return method_order(run.method), run.variant


def mean_std(values):
    """(mean, sample standard deviation) over seeds, (None, None) without values; one value has std 0."""
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs):
    """The cell of runs of one row (one method, one variant)."""
    computations = [run.computation for run in runs if run.computation is not None]
    acc_mean, acc_std = mean_std([run.best_acc for run in runs if run.best_acc is not None])
    lasts = [run.last_acc for run in runs if run.last_acc is not None]
    # A mean of the last epochs over some runs only would not be comparable with the best column's.
    last_mean, last_std = mean_std(lasts) if len(lasts) == len(runs) else (None, None)
    return MethodResult(method=runs[0].method, runs=len(runs), acc_mean=acc_mean, acc_std=acc_std,
                        computation=statistics.mean(computations) if computations else None,
                        last_mean=last_mean, last_std=last_std, top5=top5_result(runs), variant=runs[0].variant,
                        family=runs[0].family, note=runs[0].note, unix_main=runs[0].unix_main)


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
    """{architecture: [MethodResult]} over the finished teacher.py and imported runs: PUBLISHED first, then
    ALONE, each variant (--tag) in a result of its own."""
    groups = {}
    for run in sorted(runs, key=lambda run: (run.method != PUBLISHED, run.variant)):
        if run.finished and run.teacher is None:
            groups.setdefault(run.student, {}).setdefault(run.row, []).append(run)
    return {arch: [summarize(row_runs) for row_runs in rows.values()] for arch, rows in groups.items()}


def table_results(runs):
    """{pair: PairResults} for every pair distilled here, the paper's first in the paper's order."""
    groups = group_finished(runs)
    phase_one = phase_one_results(runs)
    return {
        pair: PairResults(
            ft_fs=next(iter(groups[pair].values()))[0].ft_fs if pair in groups else None,
            teachers=phase_one.get(pair[0], []),
            # A published checkpoint is no student trained alone.
            alone=[result for result in phase_one.get(pair[1], []) if result.method == ALONE],
            methods=[summarize(row_runs) for row_runs in groups.get(pair, {}).values()],
            teacher_acc=measured_teacher(groups.get(pair, {})),
            data=next(run.data for run in runs if (run.teacher, run.student) == pair),
        )
        for pair in distilled_pairs(runs)
    }


def measured_teacher(rows) -> Optional[float]:
    """The teacher's accuracy as its students measured it, over the students of teacher_<arch> (those of
    another teacher run where there are none)."""
    students = [run for row_runs in rows.values() for run in row_runs if run.teacher_acc is not None]
    of_main = [run for run in students if run.of_main_teacher]
    return mean_std([run.teacher_acc for run in of_main or students])[0]


def unpaired_results(runs, results):
    """[(architecture, MethodResult)]: finished phase-1 runs that no pair of the table shows."""
    shown = {(pair[0], teacher.row) for pair, result in results.items() for teacher in result.teachers}
    shown |= {(pair[1], alone.row) for pair, result in results.items() for alone in result.alone}
    return [(arch, result) for arch, arch_results in sorted(phase_one_results(runs).items())
            for result in arch_results if (arch, result.row) not in shown]


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


def format_row(pair, row, label, result, width=30):
    """A row of the table: `row` picks the paper's figure (TEACHER_ROW, ALONE_ROW or a method; None for a
    variant, which no published figure describes)."""
    paper_acc, paper_computation = published(pair, row)
    best = format_accuracy(result.acc_mean, result.acc_std, result.runs)
    paper = "-"
    if paper_acc is not None and result.acc_mean is not None:
        paper = f"{paper_acc:.2f} {result.acc_mean - paper_acc:+6.2f}"
    last = format_accuracy(result.last_mean, result.last_std)
    computation = with_paper(result.computation, paper_computation, " %") if result.computation is not None else ""
    return f"{label:<{width}} {best:<22} {paper:<14} {last:<16} {computation:<26}{format_top5(result)}".rstrip()


def format_top5(result) -> str:
    """ImageNet's second figure, after the row: the top-5 of the best and of the last epoch."""
    if result.top5 is None:
        return ""
    best_mean, best_std, last_mean, last_std = result.top5
    return f" top-5 best {format_accuracy(best_mean, best_std)}, last {format_accuracy(last_mean, last_std)}"


def pair_rows(result):
    """(row, label, MethodResult) of a pair: its teachers, the student alone, then each method."""
    rows = [(TEACHER_ROW, TEACHER_LABELS[teacher.method], teacher) for teacher in result.teachers]
    rows += [(ALONE_ROW, ALONE_ROW, alone) for alone in result.alone]
    rows += [(method.method, method.method, method) for method in result.methods]
    return [(None if cell.variant else row, label + cell.variant, cell) for row, label, cell in rows]


def column_widths(results) -> tuple:
    """(pair, row) columns' widths: 26 and 30, or room for the longest name (an ImageNet pair's, a variant's)
    and two spaces after it."""
    pairs = [len(f"{teacher} -> {student}") + 1 for teacher, student in results]
    labels = [len(label) + 1 for result in results.values() for _, label, _ in pair_rows(result)]
    return max([26] + pairs), max([30] + labels)


def format_table(results):
    pair_width, width = column_widths(results)
    lines = [
        "best: best test top-1 % over the epochs of each run (best_acc, what the paper reports), mean +- sample "
        "std over seeds (n runs); last: the last epoch's; finished runs only",
        "paper: the published figure and our difference from it; teacher and student alone: teacher.py runs "
        "or an imported published checkpoint",
        "computation: training MACs relative to conventional KD (%), mean over runs (paper, difference)",
        f"{'teacher -> student':<{pair_width}} {'Ft/Fs (paper, diff)':<22} {'row':<{width}} {'best':<22} "
        f"{'paper diff':<14} {'last':<16} computation",
    ]
    for pair, result in results.items():
        paper = PAPER.get(pair)
        head = f"{pair[0]} -> {pair[1]}"
        ratio = with_paper(result.ft_fs, paper.ft_fs if paper else None)
        for row, label, row_result in pair_rows(result):
            lines.append(f"{head:<{pair_width}} {ratio:<22} {format_row(pair, row, label, row_result, width)}")
            head, ratio = "", ""  # the pair is named on its first row only
    return lines


def format_unpaired(unpaired):
    """The finished phase-1 runs of no pair above (no student distilled here from or into them yet)."""
    lines = []
    width = max([30] + [len(result.variant) + len(ALONE) + 1 for _, result in unpaired])
    for arch, result in unpaired:
        label = (TEACHER_LABELS[PUBLISHED] if result.method == PUBLISHED else ALONE) + result.variant
        best = format_accuracy(result.acc_mean, result.acc_std, result.runs)
        last = format_accuracy(result.last_mean, result.last_std)
        lines.append(f"{arch:<26} {label:<{width}} best {best:<22} last {last:<16}{format_top5(result)}".rstrip())
    return lines


def format_in_progress(runs):
    return [
        f"{run.name}: {run.student} {ALONE if run.teacher is None else f'from {run.teacher}, {run.method}'}"
        f"{run.variant}: "
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
    return [f"left out: {total} finished run{'s' if total > 1 else ''} outside their dataset's protocol "
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
            lines += ["", f"* not the protocol ({departure_label(key)}): no published figure applies", *rows]
    return lines


def plot_panels(groups) -> list:
    """A plot.Panel for each pair with a finished student run, in each group of runs (the protocol's first)."""
    return [pair_panel(pair, result, departure_label(key)) for key, runs in groups.items()
            for pair, result in table_results(runs).items() if result.methods]


def pair_panel(pair, result, departures) -> plot.Panel:
    """Our points and reference lines; the published ones for a protocol run of a pair the paper reports:
    KD's and UNIXKD's, and those of the other methods drawn."""
    ours = tuple(plot.Point(m.family, m.computation, m.acc_mean, m.acc_std, variant_note(m)) for m in result.methods)
    alone = next((alone.acc_mean for alone in result.alone if not alone.variant), None)
    references = ((plot_label, acc) for plot_label, acc in (("teacher", result.teacher_acc), ("student alone", alone))
                  if acc is not None)
    panel = plot.Panel(teacher=pair[0], student=pair[1], data=result.data, departures=departures, ours=ours,
                       references=tuple(references))
    if departures:
        return panel
    methods = dict.fromkeys([KD, "UNIXKD", *(point.method for point in ours)])
    published_points = ((method, published(pair, main_row(method))) for method in methods)
    lines = (("teacher", published(pair, TEACHER_ROW)[0]), ("student alone", published(pair, ALONE_ROW)[0]))
    return replace(panel, published=tuple(plot.Point(method, computation, acc)
                                          for method, (acc, computation) in published_points if acc is not None),
                   published_references=tuple(line for line in lines if line[1] is not None))


def main_row(family) -> str:
    """The row of a method's main setting: UNIXKD's is the paper's, the others are named by the method."""
    return UNIXKD if family == "UNIXKD" else family


def variant_note(result) -> str:
    """What sets a row apart from its method's main row, in short ('k32', 'mix0', '--tag dali', 'teacher seed1',
    'seed 0 #2'): the plot writes it beside the marker; '' for the main row. UNIX's main setting is the one of the
    row's dataset and batch (ImageNet's defaults follow each process's batch)."""
    unix, family = result.unix_main, result.family
    main = words(unix if family == "UNIXKD" else family) | (words(unix) if family.startswith("UNIX") else set())
    return joined(*(word for word in words(result.method, ordered=True) if word not in main), result.note)


def words(label, ordered=False):
    found = label.replace("(", " ").replace(")", " ").split()
    return found if ordered else set(found)


def load_pyplot():
    # matplotlib is optional (not in requirements): only --plot needs it.
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from None
    return pyplot


def write_plot(groups, args, pyplot) -> int:
    """Draw the panels to args.plot; 1, with one line saying why, when there is nothing to draw."""
    panels = plot_panels(groups if args.all else {(): groups.get((), [])})
    if not panels:
        print(f"error: no plot written to {args.plot}: {why_no_panels(groups, args.all)}", file=sys.stderr)
        return 1
    plot.save(plot.draw(panels, pyplot), args.plot, pyplot)
    print(f"\nplot written to {args.plot}")
    return 0


def why_no_panels(groups, shows_all) -> str:
    apart = sum(run.finished and run.teacher is not None for key, runs in groups.items() if key for run in runs)
    if apart and not shows_all:
        return (f"no finished student run follows its dataset's protocol; --all plots the {apart} that depart "
                f"from it")
    return "no finished student run to plot (teacher.py runs alone have no computation to plot against)"


def parse_args(argv, env=None):
    env = os.environ if env is None else env
    parser = ArgumentParser(prog="python -m utils.summary", description=__doc__.splitlines()[0])
    parser.add_argument("experiments_dir", nargs="?",
                        help=f"default: $EXPERIMENTS_DIR, as the dispatchers read it, else {DEFAULT_EXPERIMENTS_DIR}")
    # Also as the flag the training scripts and utils.jobs take.
    parser.add_argument("--experiments-dir", dest="experiments_dir_flag", metavar="DIR", help="the same folder")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw accuracy against computation, one panel per pair, to FILE (.png, .pdf, "
                             ".svg, ...; needs matplotlib)")
    parser.add_argument("--all", action="store_true",
                        help="also show the runs that depart from their dataset's protocol (fewer epochs, other "
                             "data, other hyper-parameters), in tables of their own headed by what differs")
    args = parser.parse_args(argv)
    if args.experiments_dir and args.experiments_dir_flag and args.experiments_dir != args.experiments_dir_flag:
        raise UserError(f"two experiments folders, {args.experiments_dir} and --experiments-dir "
                        f"{args.experiments_dir_flag}: give one")
    # A folder given wins over the variable, as in utils.runlist and utils.jobs.
    given = args.experiments_dir or args.experiments_dir_flag
    args.from_variable = not given and bool(env.get("EXPERIMENTS_DIR"))
    args.experiments_dir = given or env.get("EXPERIMENTS_DIR") or DEFAULT_EXPERIMENTS_DIR
    return args


def check_experiments_dir(folder, from_variable=False) -> None:
    """One error for a folder that holds no runs; one taken from EXPERIMENTS_DIR says so, since none was typed."""
    folder = Path(folder)
    named = f"{folder} (the EXPERIMENTS_DIR variable)" if from_variable else str(folder)
    if (folder / SUMMARY_FILE).is_file():
        raise UserError(f"{named} is a run folder (it holds {SUMMARY_FILE}); give the experiments folder that holds "
                        f"the run folders, here {folder.parent}")
    if not folder.is_dir():
        raise UserError(f"{named} is not a folder; give the experiments folder the runs wrote to "
                        f"(default $EXPERIMENTS_DIR, else {DEFAULT_EXPERIMENTS_DIR})")


def print_tables(runs, groups, shows_all) -> None:
    """The protocol's table, its phase-1 runs of no pair, the others (or the line leaving them out), and
    the runs in progress."""
    protocol = groups.get((), [])
    results = table_results(protocol)
    print("\n".join(format_table(results)) if results else "no distilled student runs that follow the protocol yet")
    unpaired = format_unpaired(unpaired_results(protocol, results))
    if unpaired:
        print("\nteacher.py runs and published teachers of no pair above:\n" + "\n".join(unpaired))
    for line in format_off_protocol_tables(groups) if shows_all else format_left_out(groups):
        print(line)
    in_progress = format_in_progress(runs)
    if in_progress:
        print("\nin progress:\n" + "\n".join(in_progress))


def main(argv=None):
    args = parse_args(argv)
    check_experiments_dir(args.experiments_dir, args.from_variable)
    pyplot = load_pyplot() if args.plot else None
    if pyplot:
        plot.check_target(args.plot)  # before the table, so that a typo costs no scrolling back
    runs, warnings = load_runs(args.experiments_dir)
    for warning in warnings:
        print(warning, file=sys.stderr)
    groups = by_departures(runs)
    if runs:
        print_tables(runs, groups, args.all)
    else:
        patterns = " or ".join(str(Path(args.experiments_dir) / pattern) for pattern in RUN_GLOBS)
        print(f"no runs found: nothing matches {patterns}")
    return write_plot(groups, args, pyplot) if pyplot else 0


if __name__ == "__main__":
    run_main(main)
