"""A resumed run trains as it started: the flags --resume may change, and one refusal naming the others.

The run's flags are read from its summary.json, which every epoch rewrites before ckpt/last.pth, so a
run with a last.pth to resume from always has one.
"""
import json
from pathlib import Path

from utils.data.cifar100 import data_folder, dataset_kind
from utils.errors import UserError
from utils.process import distributed

# Flags that leave what a run computes unchanged, so a resume may change them.
FREE_FLAGS = {
    "epoch": "extends (or shortens) the run; the lr schedule follows the milestones, not the length",
    "gpu_id": "where it runs",
    "experiments_dir": "where its folder is; the folder is found either way",
    "resume": "how it starts", "force": "how it starts",
    "save_interval": "which snapshots are kept, not what is trained",
    "print_freq": "how often progress is printed",
}
# Not free although they are about speed: --amp and --compile round differently, and --cuda-graphs draws
# its random numbers from another stream on a GPU; a run switching mid-way would match neither kind.
# Paths that may be spelt differently as long as they name the same files.
PATH_FLAGS = {"data_root": data_folder, "teacher_path": Path}


def changed_flags(started: dict, now: dict) -> list:
    """[("--flag", value the run started with, value now)] for each flag that would change the result.

    A flag only one side knows (added or dropped by another version of the scripts) is not compared.
    """
    changes = []
    for key, before in started.items():
        if key in FREE_FLAGS or key not in now or same_value(key, before, now[key]):
            continue
        changes.append((f"--{key.replace('_', '-')}", before, now[key]))
    return changes


def same_value(key: str, before, now) -> bool:
    if before == now:
        return True
    if key in PATH_FLAGS and before is not None and now is not None:
        return PATH_FLAGS[key](before).resolve() == PATH_FLAGS[key](now).resolve()
    return False


def shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "not given" if value is None else str(value)


def changed_data(summary: dict, data_root) -> list:
    """[("the data", kind then, kind now)] when the files at the same path now hold another data set."""
    before = summary.get("data", {}).get("kind")
    if before is None or not (data_folder(data_root) / "meta").is_file():  # missing: the data loader reports it
        return []
    now = dataset_kind(data_root)
    return [] if now == before else [("the data", before, now)]


def check_same_flags(summary_file: Path, args) -> None:
    """Refuse, in one line, a --resume whose flags differ from the run's in anything but FREE_FLAGS,
    or whose data is of another kind (synthetic, CIFAR-100)."""
    try:
        summary = json.loads(summary_file.read_text())
        started = summary["args"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"cannot tell which flags {summary_file.parent} was started with ({summary_file}: "
                        f"{type(error).__name__}); pass --force to start it over") from None
    if "local_batch" in started:
        world = summary.get("world_size") or started["batch_size"] // started["local_batch"]
        check_same_world_size(summary_file.parent, world, started["local_batch"], args.local_batch)
    changes = changed_flags(started, vars(args)) + changed_data(summary, args.data_root)
    if changes:
        listed = "; ".join(f"{flag} {shown(before)} then, {shown(now)} now" for flag, before, now in changes)
        raise UserError(f"{summary_file.parent} was started with other flags: {listed}. Resume with its own flags, "
                        f"start it over with --force, or give the new run its own folder with --tag NAME")


def check_same_world_size(run, started: int, local_then: int, local_now: int) -> None:
    """Refuse to resume a student on another number of processes: UNIX picks k and b within each process's batch."""
    now = distributed.world_size()
    if now != started:
        raise UserError(f"{run} was started on {started} process(es) with batches of {local_then} per process and would "
                        f"resume on {now} with {local_now}: UNIX picks its k and b images within each process's batch, "
                        f"so the run would change method midway; resume it on {started} process(es), or start it over "
                        f"on {now} with --force (or in its own folder with --tag NAME)")
