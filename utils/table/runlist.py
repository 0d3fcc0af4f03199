"""The run list: every run behind the published table, in the order the dispatchers start them.

    python -m utils.runlist [--phase teachers|students] [--pending] [--names] [--epochs N ...]

command/command.sh (one GPU or several) and command/slurm.sh (a SLURM cluster) take their runs from
here, so they can never disagree; `DRY_RUN=1` prints this list. Phase "teachers" holds the teacher.py
runs: the 6 teachers (seed 0) and the 8 student architectures trained alone (the table's "student"
column). Phase "students" distils every pair with KD and UNIXKD and, with ABLATIONS=1, runs the paper's
ablations on resnet32x4 -> resnet8x4; with EXTENSIONS=1, every other distiller of utils.distillers (DKD, LSKD)
with and without UNIX on four pairs (docs/distillers.md); it needs the teachers, so it starts when phase 1 has ended.

Environment, all optional: SEEDS ("0 1 2 3"), EPOCHS (240), DATA_ROOT, EXPERIMENTS_DIR (./experiments),
PYTHON (python), GPU (0: the --gpu-id of every command), ONLY (a regular expression: keeps the runs
whose name it matches, and their teachers), ABLATIONS (1 adds the ablations), EXTENSIONS (1 adds the other distillers);
each may be given as a flag instead (--seeds, --epochs, ...: --help), which wins over the variable.
"""
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

from utils.distillers import names_text, other_distillers
from utils.errors import UserError
from utils.process.cli import ArgumentParser, run_main
from utils.runs.runnames import IMPORTED, is_imported, read_summary, student_run_name, teacher_run_name
from utils.table.paper import EXTENSION_PAIRS, PAPER_PAIRS, PROTOCOL, protocol_lr
from utils.unix_settings import KD_FLAGS, UNIXKD_FLAGS

TEACHERS, STUDENTS = "teachers", "students"
PHASES = (TEACHERS, STUDENTS)
PHASE_TITLES = {
    TEACHERS: "teacher.py: the teachers, then the student architectures trained alone",
    STUDENTS: "student_v0.py: the distilled students, once every phase-1 run has ended",
}
PROTOCOL_EPOCHS = PROTOCOL["epoch"]
DEFAULT_EXPERIMENTS_DIR = "./experiments"
ABLATION_PAIR = ("resnet32x4", "resnet8x4")
# The paper's ablations, each one setting away from UNIXKD's (strategy 3, mix 2, k 48, b 32), whose runs
# are already in the main table: uncertainty strategy 0-2, mix strategy 0-1, k 32/40/56.
ABLATIONS = (("strategy", "strategy", 0), ("strategy", "strategy", 1), ("strategy", "strategy", 2),
             ("mix_strategy", "mix", 0), ("mix_strategy", "mix", 1),
             ("k", "k", 32), ("k", "k", 40), ("k", "k", 56))


@dataclass(frozen=True)
class Settings:
    """The environment knobs, checked."""

    python: str = "python"
    seeds: tuple = (0, 1, 2, 3)
    epochs: int = PROTOCOL_EPOCHS
    data_root: Optional[str] = None
    experiments_dir: Optional[str] = None
    gpu: int = 0
    only: Optional[re.Pattern] = None
    ablations: bool = False
    extensions: bool = False

    @property
    def experiments(self) -> str:
        return (self.experiments_dir or DEFAULT_EXPERIMENTS_DIR).rstrip("/")

    @property
    def root(self) -> Path:
        return Path(self.experiments)


@dataclass(frozen=True)
class Run:
    name: str                     # what ONLY matches and the job log records, e.g. "KD resnet56 resnet20 seed0"
    phase: str                    # TEACHERS or STUDENTS
    folder: str                   # the run directory's name in the experiments folder
    argv: tuple                   # the command
    needs: Optional[str] = None   # the name of the phase-1 run it distils from

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def _natural(name: str, text: str, positive: bool) -> int:
    if not re.fullmatch(r"\d+", text) or (positive and int(text) == 0):
        kind = "a positive" if positive else "a non-negative"
        raise UserError(f"{name}={text!r}: must be {kind} integer")
    return int(text)


def settings_from_env(env=None) -> Settings:
    env = os.environ if env is None else env
    values = {}
    if env.get("PYTHON"):
        values["python"] = env["PYTHON"]
    if env.get("SEEDS", "").strip():
        seeds = tuple(_natural("SEEDS", seed, positive=False) for seed in env["SEEDS"].split())
        if len(set(seeds)) < len(seeds):
            raise UserError(f"SEEDS={env['SEEDS']!r} names a seed twice: each run would be listed twice")
        values["seeds"] = seeds
    if env.get("EPOCHS"):
        values["epochs"] = _natural("EPOCHS", env["EPOCHS"], positive=True)
    if env.get("GPU"):
        values["gpu"] = _natural("GPU", env["GPU"], positive=False)
    for key, name in (("data_root", "DATA_ROOT"), ("experiments_dir", "EXPERIMENTS_DIR")):
        if env.get(name):
            values[key] = env[name]
    if env.get("ONLY"):
        try:
            values["only"] = re.compile(env["ONLY"])
        except re.error as error:
            raise UserError(f"ONLY={env['ONLY']!r} is not a regular expression: {error}") from None
    for name, what in (("ABLATIONS", "the ablations"), ("EXTENSIONS", names_text(other_distillers()))):
        if env.get(name, "0") not in ("", "0", "1"):
            raise UserError(f"{name}={env[name]!r}: must be 1 (add {what}) or 0")
        values[name.lower()] = env.get(name) == "1"
    return Settings(**values)


# The knobs as flags of `python -m utils.runlist` and `python -m utils.jobs status`: (flag, variable, help).
SETTING_FLAGS = (
    ("--seeds", "SEEDS", "seeds, e.g. '0 1' (default 0 1 2 3)"),
    ("--epochs", "EPOCHS", f"epochs of every run (default {PROTOCOL_EPOCHS})"),
    ("--data-root", "DATA_ROOT", "the runs' --data-root"),
    ("--experiments-dir", "EXPERIMENTS_DIR", f"where the runs' folders are (default {DEFAULT_EXPERIMENTS_DIR})"),
    ("--gpu", "GPU", "the --gpu-id of every command (default 0)"),
    ("--only", "ONLY", "a regular expression: the runs whose name it matches, and their teachers"),
    ("--python", "PYTHON", "the interpreter of every command (default python)"),
)
SWITCHES = (("--ablations", "ABLATIONS", "add the paper's ablations"),
            ("--extensions", "EXTENSIONS", f"add the other distillers ({names_text(other_distillers())})"))


def add_settings_args(parser) -> None:
    """The environment knobs as flags; a flag given wins over its variable."""
    group = parser.add_argument_group("which runs (each flag may be given instead as the environment variable "
                                      "named with it, as the dispatchers do)")
    for flag, variable, text in SETTING_FLAGS:
        group.add_argument(flag, dest=variable, metavar=variable, help=f"{text}; environment: {variable}")
    for flag, variable, text in SWITCHES:
        group.add_argument(flag, dest=variable, action="store_const", const="1", help=f"{text}; environment: {variable}=1")


def settings_from_args(args, env=None) -> Settings:
    env = dict(os.environ if env is None else env)
    env.update({variable: value for variable, value in vars(args).items()
                if variable.isupper() and value is not None})
    return settings_from_env(env)


def common_flags(settings: Settings) -> list:
    flags = ["--epoch", str(settings.epochs)]
    if settings.data_root:
        flags += ["--data-root", settings.data_root]
    if settings.experiments_dir:
        flags += ["--experiments-dir", settings.experiments_dir]
    return flags + ["--gpu-id", str(settings.gpu), "--resume"]


def as_flags(settings: dict) -> list:
    return [word for key, value in settings.items() for word in (f"--{key.replace('_', '-')}", str(value))]


def teacher_py_run(settings: Settings, name: str, arch: str, seed: int) -> Run:
    seed_flags = ["--seed", str(seed)] if seed else []
    argv = [settings.python, "teacher.py", "--arch", arch, "--lr", f"{protocol_lr(arch):g}", *seed_flags,
            *common_flags(settings)]
    return Run(name, TEACHERS, teacher_run_name(arch, seed), tuple(argv))


def student_run(settings: Settings, name: str, teacher: str, student: str, seed: int, method_flags: dict) -> Run:
    teacher_dir = f"{settings.experiments}/{teacher_run_name(teacher, 0)}/"
    argv = [settings.python, "student_v0.py", "--teacher-path", teacher_dir, "--student-arch", student,
            "--lr", f"{protocol_lr(student):g}", "--seed", str(seed), *common_flags(settings), *as_flags(method_flags)]
    folder = student_run_name(SimpleNamespace(student_arch=student, seed=seed, **method_flags), teacher, "best")
    return Run(name, STUDENTS, folder, tuple(argv), needs=f"teacher {teacher}")


def all_runs(settings: Settings) -> list:
    """Every run, unfiltered: teachers first, then each pass over the seeds adds one run to every cell."""
    teachers = list(dict.fromkeys(pair.teacher for pair in PAPER_PAIRS))
    students = list(dict.fromkeys(pair.student for pair in PAPER_PAIRS))
    runs = [teacher_py_run(settings, f"teacher {arch}", arch, 0) for arch in teachers]
    runs += [teacher_py_run(settings, f"alone {arch} seed{seed}", arch, seed)
             for seed in settings.seeds for arch in students]
    for seed in settings.seeds:
        for pair in PAPER_PAIRS:
            for method, flags in (("KD", KD_FLAGS), ("UNIXKD", UNIXKD_FLAGS)):
                name = f"{method} {pair.teacher} {pair.student} seed{seed}"
                runs.append(student_run(settings, name, pair.teacher, pair.student, seed, flags))
    if settings.ablations:
        teacher, student = ABLATION_PAIR
        for seed in settings.seeds:
            for key, label, value in ABLATIONS:
                name = f"ablation {label}{value} {teacher} {student} seed{seed}"
                runs.append(student_run(settings, name, teacher, student, seed, {**UNIXKD_FLAGS, key: value}))
    if settings.extensions:
        runs += extension_runs(settings)
    return runs


def extension_runs(settings: Settings) -> list:
    """Every distiller but the paper's KD, each as conventional KD runs and with UNIX's setting, on EXTENSION_PAIRS."""
    runs = []
    for seed in settings.seeds:
        for teacher, student in EXTENSION_PAIRS:
            for distiller in other_distillers():
                for prefix, flags in (("", KD_FLAGS), ("UNIX", UNIXKD_FLAGS)):
                    name = f"{prefix}{distiller} {teacher} {student} seed{seed}"
                    runs.append(student_run(settings, name, teacher, student, seed, {**flags, "distill": distiller}))
    return runs


def selected_runs(settings: Settings) -> list:
    """The runs ONLY keeps, with the teachers they need; all of them without ONLY."""
    runs = all_runs(settings)
    if settings.only is None:
        return runs
    kept = {run.name for run in runs if settings.only.search(run.name)}
    if not kept:
        raise UserError(f"ONLY={settings.only.pattern!r} matches none of the {len(runs)} run names "
                        f"(such as {runs[-1].name!r}; `python -m utils.runlist --names` without ONLY lists them)")
    kept |= {run.needs for run in runs if run.name in kept and run.needs}
    return [run for run in runs if run.name in kept]


def imported_source(run: Run, summary):
    """The file a published teacher in this teacher run's folder came from (summary: its summary.json
    content); None for any other run."""
    if run.phase != TEACHERS or not is_imported(summary):
        return None
    return str(summary[IMPORTED].get("source", "?"))


def epochs_done(settings: Settings, run: Run) -> tuple:
    """(epochs done, wall seconds) from the run's summary.json; (0, 0.0) before its first epoch.

    An imported teacher was trained elsewhere: all epochs done, in no time here (which keeps it out of
    the pace behind utils.table.jobs' time left)."""
    summary = read_summary(settings.root / run.folder)
    if imported_source(run, summary) is not None:
        return settings.epochs, 0.0
    try:
        return int(summary["epochs_done"]), float(summary["wall_seconds"])
    except (KeyError, TypeError, ValueError):
        # Missing (not started), or from an interrupted write of an older version: not done.
        return 0, 0.0


def finished_its_own_length(settings: Settings, run: Run) -> bool:
    """Whether the run reached the end of its own --epoch (a trial run of fewer epochs than the list's)."""
    summary = read_summary(settings.root / run.folder)
    return isinstance(summary, dict) and summary.get("finished") is True


def is_finished(settings: Settings, run: Run) -> bool:
    return epochs_done(settings, run)[0] >= settings.epochs


def find_run(settings: Settings, name: str) -> Run:
    for run in selected_runs(settings):
        if run.name == name:
            return run
    raise UserError(f"no run named {name!r} in the run list (SEEDS, ONLY, ABLATIONS and EXTENSIONS choose it; "
                    f"DRY_RUN=1 lists it)")


def format_list(settings: Settings, runs: list) -> list:
    """The runs as commands under a header per phase."""
    lines = []
    for number, phase in enumerate(PHASES, 1):
        in_phase = [run for run in runs if run.phase == phase]
        if in_phase:
            finished = sum(is_finished(settings, run) for run in in_phase)
            imported = {run.name: imported_source(run, read_summary(settings.root / run.folder)) for run in in_phase}
            imported = {name: source for name, source in imported.items() if source is not None}
            lines.append(f"# phase {number} of {len(PHASES)}, {PHASE_TITLES[phase]}: "
                         f"{len(in_phase)} runs, {finished} finished"
                         + (f" ({len(imported)} of them imported teachers)" if imported else ""))
            lines += [format_imported(run.name, imported[run.name]) if run.name in imported else run.command
                      for run in in_phase]
    return lines


def format_imported(name: str, source: str) -> str:
    # A comment, not a command: nothing of it runs, and DRY_RUN shows why.
    return f"# {name}: imported published checkpoint ({source}), not trained here"


def parse_args(argv):
    parser = ArgumentParser(prog="python -m utils.runlist", description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=PHASES, help="only this phase")
    parser.add_argument("--pending", action="store_true", help="only the runs not finished yet")
    parser.add_argument("--names", action="store_true", help="print run names, one a line, for the dispatchers")
    add_settings_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    settings = settings_from_args(args)
    runs = [run for run in selected_runs(settings) if args.phase in (None, run.phase)]
    if args.pending:
        runs = [run for run in runs if not is_finished(settings, run)]
    lines = [run.name for run in runs] if args.names else format_list(settings, runs)
    if lines:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_main(main)
