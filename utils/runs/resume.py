"""A resumed run trains as it started: the flags --resume may change, and one refusal naming the others.

The run's flags are read from its summary.json, which every epoch rewrites before ckpt/last.pth, so a
run with a last.pth to resume from always has one.
"""
import json
from pathlib import Path

from utils.data.cifar100 import data_folder, dataset_kind
from utils.errors import UserError
from utils.process import ranks
from utils.runs.runnames import default_share, recorded_batch_per_process, started_world_size

# How a run was started, not what it computes: summary.json's args leave them out (older files hold them).
STARTED_BY = ("resume", "force")
# Flags that leave what a run computes unchanged, so a resume may change them.
FREE_FLAGS = {
    "epoch": "extends (or shortens) the run; the lr schedule follows the milestones, not the length",
    "gpu_id": "where it runs",
    "experiments_dir": "where its folder is; the folder is found either way",
    **dict.fromkeys(STARTED_BY, "how it starts"),
    "save_interval": "which snapshots are kept, not what is trained",
    "print_freq": "how often progress is printed",
    "log_freq": "how often TensorBoard gets the training loss",
    "workers": "how many processes load the data; each image's crop is seeded by (seed, epoch, image)",
}
# Flags about where and how this process runs: a resume that does not give them uses their defaults, not
# the run's (its GPU may be another's now, its cores fewer). Every other flag not given keeps the value the
# run started with.
PLACE_FLAGS = ("gpu_id", "experiments_dir", *STARTED_BY, "workers")
# What a run's result depends on besides its flags, recorded in summary.json (key: what a message calls it).
INPUTS = {"teacher_identity": "the teacher's weights"}
# Not free although they are about speed: --amp and --compile round differently. --cuda-graphs draws what an
# eager run draws (torch's note "CUDA Graph-safe RNG states") and replays the same kernels, but until a GPU
# has shown a graphed run bit-identical to an eager one (command/gpu_checks.sh) a switch mid-way stays refused.
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
        return " ".join(map(shown, value))
    if isinstance(value, float):  # 0.009375, not its repr 0.009375000000000001
        return f"{value:g}"
    return "not given" if value is None else str(value)


def changed_data(summary: dict, data_root) -> list:
    """[("the data", kind then, kind now)] when the files at the same path now hold another data set."""
    before = summary.get("data", {}).get("kind")
    if before is None or not (data_folder(data_root) / "meta").is_file():  # missing: the data loader reports it
        return []
    now = dataset_kind(data_root)
    return [] if now == before else [("the data", before, now)]


def keep_started_flags(started: dict, args) -> list:
    """Give each flag the command line did not give (args.given) the value the run started with;
    [("--flag", the run's value)] for those that differ from what they would be now. Args that do not
    know which flags were given (args.given missing) are left alone."""
    given = getattr(args, "given", None)
    if given is None:
        return []
    kept = []
    for key, value in started.items():
        if key in given or key in PLACE_FLAGS or key not in vars(args) or same_value(key, value, vars(args)[key]):
            continue
        setattr(args, key, value)
        kept.append((f"--{key.replace('_', '-')}", value))
    return kept


def changed_inputs(summary: dict, inputs: dict) -> list:
    """[(what, recorded then, now)] for each input (INPUTS) the run recorded otherwise; one it did not
    record (a run of an older version) is not compared."""
    return [(INPUTS[key], summary[key], now) for key, now in inputs.items()
            if summary.get(key) is not None and summary[key] != now]


def check_same_flags(summary_file: Path, args, inputs=None, same_process_count: bool = False) -> None:
    """Continue with the run's own flags where none is given; refuse, in one line, a --resume whose given
    flags differ from the run's in anything but FREE_FLAGS, whose data is of another kind (synthetic,
    CIFAR-100) or whose inputs (a student's teacher) are not those the run started with, and, with
    same_process_count (a student), one on another number of processes than the run recorded."""
    try:
        summary = json.loads(summary_file.read_text())
        started = summary["args"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"cannot tell which flags {summary_file.parent} was started with ({summary_file}: "
                        f"{type(error).__name__}); pass --force to start it over") from None
    shares = [f"--{size}" for size in ("k", "b") if getattr(args, size, 0) is None]  # ImageNet's defaults
    kept = keep_started_flags(started, args)
    changes = (changed_flags(started, vars(args)) + changed_data(summary, args.data_root)
               + changed_inputs(summary, inputs or {}))
    if changes:
        listed = "; ".join(f"{flag} {shown(before)} then, {shown(now)} now" for flag, before, now in changes)
        other = "flags" if all(flag.startswith("--") for flag, _, _ in changes) else "settings"  # its data, its teacher
        raise UserError(f"{summary_file.parent} was started with other {other}: {listed}. Resume with its own flags, "
                        f"start it over with --force, or give the new run its own folder with --tag NAME")
    if same_process_count:
        check_same_process_count(summary_file.parent, summary, args.batch_size)
    if kept:
        print("--resume: the run's own " + ", ".join(kept_text(flag, value, summary, shares) for flag, value in kept)
              + " (flags not given keep the values the run started with)")


def kept_text(flag: str, value, summary: dict, shares: list) -> str:
    """A flag kept from the run, as the --resume line shows it; ImageNet's default k and b (`shares`: those not
    given) with the share of each process's batch they are, which the folder's name gives: `--k 18 (3/4 of 24
    per process)`."""
    if flag not in shares:
        return f"{flag} {shown(value)}"
    share = default_share(("--k", "--b").index(flag))
    return f"{flag} {shown(value)} ({share} of {recorded_batch_per_process(summary)} per process)"


def check_same_process_count(run: Path, summary: dict, batch: int) -> None:
    """Refuse to resume a student on another number of processes than summary.json recorded: UNIX picks its k
    and b images within each process's batch, so the run would change method midway. `batch`: the run's
    global batch (a --batch-size given otherwise is refused before)."""
    then, now = started_world_size(summary), ranks.world_size()
    if now == then:
        return
    each_then = recorded_batch_per_process(summary)
    each_now = f"with {batch // now} images each" if batch % now == 0 else f"(which cannot share {batch} images evenly)"
    raise UserError(f"{run} was started on {then} process(es) with {each_then} images each (--batch-size {batch}) and "
                    f"would resume on {now} {each_now}: UNIX picks its k and b images within each process's batch, so "
                    f"the run would change method midway; resume it on {then} process(es), or start it over on {now} "
                    f"with --force (or in its own folder with --tag NAME)")
