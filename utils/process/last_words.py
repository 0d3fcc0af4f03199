"""Each rank's last line and exit status, left for `python -m utils.torchrun` (utils.process.launch) to print.

The launcher names a folder in UNIXKD_LAST_WORDS; a rank that ends with a line to say (an `error:` line, where
the run stopped) leaves it there, with its status and the time, rather than printing it, and the launcher prints
the first one, after torchrun's own report. A rank that stops leaves the stop's line, the same at every rank
(utils.process.cli.stop_line). Without the launcher there is no folder and nothing is left.

On several nodes command/imagenet_slurm.sh gives every node's launcher one folder on the shared file system:
each then sees every rank's words (a rank that lost its connection to another knows that rank's error is the
cause), and the first launcher to end with a line to print alone prints it.
"""
import os
import time
from pathlib import Path

from utils.process.files import atomic_write_text

LAST_WORDS = "UNIXKD_LAST_WORDS"
PRINTED = "printed"  # not rank*: not a rank's word


def folder():
    """The launcher's folder, or None (plain torchrun, or one process)."""
    path = os.environ.get(LAST_WORDS)
    return Path(path) if path else None


def leave(line: str, status: int) -> None:
    """This rank's last word: `line` ("" for none) and its exit status, stamped with the time."""
    rank = os.environ.get("RANK", "0")
    # whole or absent: the launcher may read while ranks still end
    atomic_write_text(folder() / f"rank{rank}", f"{status}\n{time.time()!r}\n{line}\n")


def claim_the_printing(words: Path) -> bool:
    """Whether this launcher prints the run's last line: the first to end with one to print claims it (O_EXCL: one
    alone creates the mark, on NFS too), the others say nothing. Whichever node it is on: the launcher of rank 0's
    may be killed before it prints (srun ends the step, SIGKILL after KillWait, once one task failed)."""
    try:
        os.close(os.open(words / PRINTED, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def read(words: Path) -> list:
    """[(time, rank, status, line)] of the words left in `words`, the first said first."""
    left = []
    for path in words.glob("rank*"):
        try:
            status, stamp, line = path.read_text().split("\n", 2)
            left.append((float(stamp), int(path.name[4:]), int(status), line.rstrip("\n")))
        except (OSError, ValueError):  # a word cut short by the process's death says nothing
            continue
    return sorted(left)


def first(words: Path):
    """(status, line) that ends the launcher: the first line any rank said (its root cause), else the first status
    left without one (line ""); None when no rank left anything (they crashed, or were killed)."""
    left = read(words)
    said = [(status, line) for _, _, status, line in left if line]
    if said:
        return said[0]
    return (left[0][2], "") if left else None


def another_rank_said_something() -> bool:
    """Whether another rank has left a line: an exception met now (a lost connection) follows from its end."""
    here, me = folder(), int(os.environ.get("RANK", "0"))
    return here is not None and any(rank != me and line for _, rank, _, line in read(here))
