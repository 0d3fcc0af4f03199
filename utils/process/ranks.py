"""A process's place among torchrun's (RANK, LOCAL_RANK, WORLD_SIZE) and who speaks for all of them, without
torch: the training scripts check their flags with these before torch is imported (a typo answers at once).
utils.process.distributed re-exports them beside the DDP plumbing.
"""
import contextlib
import os
import sys
import time
import warnings

from utils.errors import NonFiniteLoss, UserError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


@contextlib.contextmanager
def main_speaks():
    """Rank 0 alone prints and warns; on the others a bad-input error ends the process with the same status, silently.

    Every rank meets the same bad input (the same flags, the same files), so each ends by itself and
    rank 0's one `error:` line is the only one shown.
    """
    if is_main():
        yield
        return
    sys.stdout = open(os.devnull, "w")
    warnings.simplefilter("ignore")  # rank 0 shows each warning once
    try:
        yield
    except UserError:
        leave_the_word_to_rank_0(2)
    except NonFiniteLoss:
        leave_the_word_to_rank_0(1)
    except KeyboardInterrupt:  # Ctrl-C reaches every rank: rank 0 alone gives the hint
        raise SystemExit(130) from None


RANK_0_GRACE_SECONDS = 30


def leave_the_word_to_rank_0(status: int) -> None:
    """End a rank other than 0 that met the error every rank meets, after rank 0 has said it.

    torchrun stops every worker as soon as one exits with an error: a rank that ended first could get
    rank 0 killed before it printed its `error:` line. So this rank waits; rank 0's exit makes torchrun
    end it, and the bounded wait keeps it from outliving a rank 0 that hangs.
    """
    time.sleep(RANK_0_GRACE_SECONDS)
    raise SystemExit(status) from None


def local_batch_size(batch_size: int) -> int:
    """Each process's share of --batch-size, the global batch (the lr rule is stated per global batch)."""
    size = world_size()
    if batch_size % size:
        raise UserError(f"--batch-size {batch_size} is not divisible by the world size {size} "
                        f"(processes started by torchrun); use a multiple of {size}")
    return batch_size // size
