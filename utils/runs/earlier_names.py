"""Student folders named by an earlier version, found so that their runs still resume where they are.

Before, an ImageNet student's folder named k and b not given by their values in each process's batch
(`_k24_b16_` for 256 images on 8 processes, `_k192_b128_` on one), so the name changed with the batch and
the number of processes; today it names their shares (`_k0.75_b0.5_`). And a student of a tagged teacher
(`teacher_<arch>_<tag>/`) was named as one of the untagged teacher; today the teacher's tag is in the name.
"""
import re
from argparse import Namespace
from pathlib import Path

from utils.distillers import default_unix_sizes
from utils.errors import UserError
from utils.process import ranks
from utils.runs.rundir import RunDirectory
from utils.runs.runnames import read_summary, recorded_batch_per_process, started_world_size, student_run_name

MARK = "\0"  # where an earlier name held a number: never in a name itself


def student_folder(today: Path, args, teacher_arch: str, named_teacher: tuple, inputs: dict) -> Path:
    """The folder of this student run: `today` (its name now), or, where that holds no run, the one folder an
    earlier version named for the same run, which it continues in. named_teacher: (label, tag) as in the name;
    inputs: the run's inputs (its teacher's identity), which a folder of a tagged teacher's student must match."""
    pattern = earlier_name_pattern(args, teacher_arch, named_teacher)
    if pattern is None or RunDirectory(today).holds_run() or not today.parent.is_dir():
        return today
    found = []
    for folder in sorted(today.parent.iterdir()):
        summary = summary_of(folder) if pattern.fullmatch(folder.name) else None
        if summary is not None and same_run(summary, args, named_teacher[1], inputs):
            found.append((folder, summary))
    if len(found) > 1:  # one batch on several process counts: the count this one runs on picks
        found = [run for run in found if started_world_size(run[1]) == ranks.world_size()] or found
    if len(found) > 1:
        listed = ", ".join(f"{folder.name} (--batch-size {summary['args']['batch_size']} on "
                           f"{started_world_size(summary)} process(es))" for folder, summary in found)
        raise UserError(f"{len(found)} runs of these settings have folders named by an earlier version: {listed}; "
                        f"give the --batch-size of the one to continue and run it on its number of processes")
    if not found:
        return today
    print(f"note: this run's folder is {found[0][0].name}, as an earlier version named it (today's name: "
          f"{today.name}); the run continues there")
    return found[0][0]


def earlier_name_pattern(args, teacher_arch: str, named_teacher: tuple):
    """The names an earlier version gave this run: k and b not given as numbers, the teacher untagged; None
    where the name has not changed."""
    label, teacher_tag = named_teacher
    numbered = {size: MARK for size in ("k", "b") if getattr(args, size) is None}
    if not numbered and teacher_tag is None:
        return None
    name = student_run_name(Namespace(**{**vars(args), **numbered}), teacher_arch, label)
    return re.compile(r"\d+".join(map(re.escape, name.split(MARK))))


def summary_of(folder: Path):
    summary = read_summary(folder)
    return summary if summary is not None and isinstance(summary.get("args"), dict) else None


def same_run(summary: dict, args, teacher_tag, inputs: dict) -> bool:
    """Whether a folder of an earlier name holds this run: k and b not given now were the defaults of its
    batch per process then; its batch is this one, unless a --resume leaves the batch to the run; and a
    tagged teacher's student distilled from this very teacher."""
    started = summary["args"]
    if any(not isinstance(started.get(key), int) for key in ("batch_size", "k", "b")):
        return False
    each = recorded_batch_per_process(summary)
    defaults = dict(zip(("k", "b"), default_unix_sizes(each)))
    if any(started[size] != defaults[size] for size in ("k", "b") if getattr(args, size) is None):
        return False
    if (not args.resume or "batch_size" in getattr(args, "given", ())) and started["batch_size"] != args.batch_size:
        return False
    return teacher_tag is None or all(summary.get(key) == value for key, value in inputs.items())
