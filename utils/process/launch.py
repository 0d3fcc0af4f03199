"""torchrun that ends with the project's word: `python -m utils.torchrun [torchrun's flags] SCRIPT [flags]`.

Plain torchrun follows a rank's `error:` line with its own failure report (some 40 lines, a traceback
among them) and answers Ctrl-C with a SignalException traceback. This starts the workers exactly as
torchrun does (torch.distributed.run: the same flags, the same code), then ends quietly: rank 0 leaves
its last line (the `error:` line, or the hint after Ctrl-C) in a file rather than printing it
(utils.process.cli.last_word), and the launcher prints it last and exits with rank 0's status.
"""
import os
import sys
import tempfile
from pathlib import Path

from utils.process.cli import LAST_WORDS


def rank_0_word(words: Path):
    """(exit status, line) that rank 0 left, or None when it left none (it crashed, or was killed first)."""
    try:
        status, line = words.read_text().split("\n", 1)
        return int(status), line.rstrip("\n")
    except (OSError, ValueError):
        return None


def main(argv=None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    with tempfile.TemporaryDirectory(prefix="unixkd-torchrun-") as folder:
        words = Path(folder) / "rank0"
        os.environ[LAST_WORDS] = str(words)  # the workers inherit it
        try:
            run(parse_args(argv))
            return 0
        except ChildFailedError as failed:  # no word from rank 0: torchrun's summary, without its traceback
            status, line = rank_0_word(words) or (min(failed.failures.items())[1].exitcode, str(failed).strip())
        except SignalException as signalled:
            status, line = rank_0_word(words) or (128 + signalled.sigval, f"interrupted ({signalled.sigval.name})")
        finally:
            del os.environ[LAST_WORDS]
        print(line, file=sys.stderr)
        return status
