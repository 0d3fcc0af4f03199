"""A student's folder where the one its settings name today holds no run: another name of the same run.

One run can have two names. An ImageNet student's folder names k and b given by their numbers and those
not given by their shares of each process's batch (`_k0.75_b0.5_`), so `--k 18 --b 12` at 24 images per
process names another folder than the default k and b, which are 18 and 12 there. Earlier versions named
the default k and b by their numbers (`_k24_b16_` for 256 images on 8 processes, `_k192_b128_` on one), and
a student of a tagged teacher (`teacher_<arch>_<tag>/`) as one of the untagged teacher. So where today's
folder holds no run, the folders whose names differ from it only there are looked in: one holding this run
(its k, b and batch) is continued; and a --resume that leaves k or b out and would otherwise start a new run
beside runs of the same student, teacher and seed is refused, naming them, rather than start one silently.
"""
import re
from argparse import Namespace
from pathlib import Path

from utils.distillers import IMAGENET
from utils.errors import UserError
from utils.process import ranks
from utils.runs.rundir import RunDirectory
from utils.runs.runnames import read_summary, recorded_batch_per_process, started_world_size, student_run_name
from utils.unix_settings import default_unix_sizes

MARK = "\0"  # where a name may hold any k or b: never in a name itself
SIZE = r"\d+(?:\.\d+)?"  # a k or b in a name: a number, or a share (0.75)
UNIX_SIZES = ("k", "b")


def student_folder(today: Path, args, teacher_arch: str, named_teacher: tuple, inputs: dict) -> Path:
    """The folder of this student run: `today` (its name now), or, where that holds no run, the one folder of
    another name (see above) that holds this run, which it continues in. named_teacher: (label, tag) as in the
    name; inputs: the run's inputs (its teacher's identity), which a run in another folder must share."""
    pattern = other_names(args, teacher_arch, named_teacher)
    if pattern is None or RunDirectory(today).holds_run() or not today.parent.is_dir():
        return today
    beside = runs_beside(today, pattern, named_teacher[1], inputs)
    found = [run for run in beside if same_run(run[1], args)]
    if len(found) > 1:  # one batch on several process counts: the count this one runs on picks
        found = [run for run in found if started_world_size(run[1]) == ranks.world_size()] or found
    if len(found) > 1:
        raise UserError(f"{len(found)} runs of these settings have folders of other names: {listed(found)}; give the "
                        f"--batch-size of the one to continue and run it on its number of processes")
    if found:
        print(f"note: this run's folder is {found[0][0].name} (today's name for it: {today.name}); the run "
              f"continues there")
        return found[0][0]
    if beside and args.resume and not names_its_sizes(args):
        raise UserError(f"--resume finds no run in {today}, and {len(beside)} run(s) of this student, teacher and "
                        f"seed with another k, b or batch beside it: {listed(beside)}; to continue one, resume it with "
                        f"those flags; to start a new run, leave out --resume or give it its own folder with --tag NAME")
    return today


def other_names(args, teacher_arch: str, named_teacher: tuple):
    """A pattern of the other names this run may have: on ImageNet any k and b, numbers or shares; for a
    tagged teacher, also the untagged teacher's name; None where it has no other."""
    label, teacher_tag = named_teacher
    imagenet = args.dataset == IMAGENET
    if not imagenet and teacher_tag is None:  # CIFAR-100's k and b are numbers, always in the name
        return None
    marked = Namespace(**{**vars(args), **dict.fromkeys(UNIX_SIZES, MARK)}) if imagenet else args
    names = sorted({student_run_name(marked, teacher_arch, label, tag) for tag in (None, teacher_tag)})
    return re.compile("|".join(f"(?:{SIZE.join(map(re.escape, name.split(MARK)))})" for name in names))


def runs_beside(today: Path, pattern, teacher_tag, inputs: dict) -> list:
    """[(folder, its summary.json)] of the student runs of this teacher in the folders beside `today` that
    `pattern` names."""
    runs = []
    for folder in sorted(today.parent.iterdir()):
        summary = read_summary(folder) if folder != today and pattern.fullmatch(folder.name) else None
        if summary is not None and holds_sizes(summary) and of_this_teacher(summary, teacher_tag, inputs):
            runs.append((folder, summary))
    return runs


def holds_sizes(summary: dict) -> bool:
    started = summary.get("args")
    return isinstance(started, dict) and all(isinstance(started.get(key), int) for key in ("batch_size", *UNIX_SIZES))


def of_this_teacher(summary: dict, teacher_tag, inputs: dict) -> bool:
    """Whether the run recorded this teacher's inputs (its weights' identity). A run of a version that recorded
    none passes for the untagged teacher's, whose name it has, never for a tagged teacher's."""
    return all(summary.get(key) == value or (teacher_tag is None and summary.get(key) is None)
               for key, value in inputs.items())


def same_run(summary: dict, args) -> bool:
    """Whether a run in a folder of another name is this one: its k and b are those given, or, not given (None,
    ImageNet), the defaults of its batch per process; its batch is this one, unless a --resume leaves the batch
    to the run."""
    started = summary["args"]
    defaults = dict(zip(UNIX_SIZES, default_unix_sizes(recorded_batch_per_process(summary))))
    if any(started[size] != (defaults[size] if getattr(args, size) is None else getattr(args, size))
           for size in UNIX_SIZES):
        return False
    batch_left_to_run = args.resume and "batch_size" not in getattr(args, "given", ())
    return batch_left_to_run or started["batch_size"] == args.batch_size


def names_its_sizes(args) -> bool:
    """Whether --k and --b are both given: then the folder is named by them, and a --resume that finds no run there
    starts this one (command/imagenet_slurm.sh always passes --resume, so a sweep over k and b starts that way)."""
    return all(getattr(args, size) is not None for size in UNIX_SIZES)


def listed(runs: list) -> str:
    """Each run's folder with the flags that name it and its number of processes."""
    return ", ".join(f"{folder.name} (--batch-size {summary['args']['batch_size']} --k {summary['args']['k']} --b "
                     f"{summary['args']['b']} on {started_world_size(summary)} process(es))" for folder, summary in runs)
