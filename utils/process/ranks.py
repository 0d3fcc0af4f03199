"""A process's place among torchrun's (RANK, LOCAL_RANK, WORLD_SIZE) and who speaks for all of them, without
torch: the training scripts check their flags with these before torch is imported (a typo answers at once).
utils.process.distributed re-exports them beside the DDP plumbing.
"""
import contextlib
import os
import sys
import time
import warnings

from utils.errors import NonFiniteLoss, Preempted, UserError
from utils.process import last_words
from utils.process.cli import stop_line, stop_status


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_world_size() -> int:
    """The processes torchrun started on this node (they share its cores)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


@contextlib.contextmanager
def main_speaks():
    """Rank 0 alone prints and warns; another rank ends with an error's one line, said once whichever rank met it.

    Where the run stopped (Ctrl-C, the preemption signal) is rank 0's to print; under the launcher another rank
    leaves the same line (every rank stops at the same iteration, once rank 0 has saved), so that the first
    launcher to end prints it: srun ends a step's other tasks once one has exited, rank 0's launcher among them.
    An exception that follows another rank's end (the connection it lost when that rank exited) ends this rank
    quietly, with status 1: the launcher shows that rank's line, the cause.
    """
    if not is_main():
        sys.stdout = open(os.devnull, "w")
        warnings.simplefilter("ignore")  # rank 0 shows each warning once
    try:
        yield
    except (UserError, NonFiniteLoss) as error:
        if is_main():
            raise
        leave_the_word(f"error: {error}", 2 if isinstance(error, UserError) else 1)
    except (KeyboardInterrupt, Preempted) as stop:
        if is_main():
            raise
        if last_words.folder():
            last_words.leave(stop_line(stop), stop_status(stop))
        raise SystemExit(stop_status(stop)) from None
    except Exception:
        if last_words.another_rank_said_something():
            raise SystemExit(1) from None
        raise


RANK_0_GRACE_SECONDS = 30


def leave_the_word(line: str, status: int) -> None:
    """End a rank other than 0 with an error's line, said once whichever rank met it.

    Under `python -m utils.torchrun` the line goes to the launcher, which prints the first rank's (ranks that
    meet the same bad input leave the same line). Under plain torchrun this rank waits first: torchrun stops
    every worker as soon as one exits with an error, so a rank that ended first could get rank 0 killed before
    it printed. An error every rank meets is rank 0's to print, and rank 0's exit makes torchrun end this rank
    in its wait; an error of this rank's own (a file its node cannot read) is printed after the wait.
    """
    if last_words.folder():
        last_words.leave(line, status)
    else:
        time.sleep(RANK_0_GRACE_SECONDS)
        print(line, file=sys.stderr, flush=True)
    raise SystemExit(status) from None


def local_batch_size(batch_size: int) -> int:
    """Each process's share of --batch-size, the global batch (the lr rule is stated per global batch)."""
    size = world_size()
    if batch_size % size:
        raise UserError(f"--batch-size {batch_size} is not divisible by the world size {size} "
                        f"(processes started by torchrun); use a multiple of {size}")
    return batch_size // size
