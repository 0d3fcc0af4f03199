"""torchrun that ends with the project's word: `python -m utils.torchrun [torchrun's flags] SCRIPT [flags]`.

Plain torchrun follows a rank's `error:` line with its own failure report (some 40 lines, a traceback
among them) and answers Ctrl-C with a SignalException traceback. This starts the workers exactly as
torchrun does (torch.distributed.run: the same flags, the same code), then ends quietly: each rank leaves
its last line (an `error:` line, where the run stopped) in a folder rather than printing it
(utils.process.last_words), and the launcher prints the first one said, whichever rank said it, and exits
with that rank's status. Where no rank left a line (a crash), the status is torchrun's root cause's: its
first failure by time, a worker killed by a signal mapped to 128 + the signal's number, as a shell does.

It passes the preemption signal (SIGUSR1) on to the workers as torchrun does SIGINT and SIGTERM, and after a
signal ends only once its workers have. A folder named in UNIXKD_LAST_WORDS (command/imagenet_slurm.sh: one on
the shared file system for every node's launcher) is used rather than one of its own.
"""
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from utils.process import last_words
from utils.process.cli import exit_status

# torchrun's agent passes on to its workers the signals of --signals-to-handle (torch >= 2.9; before, the first
# four alone) and dies of any other: the preemption signal, SIGUSR1, must be among them, or the launcher ends at
# once (status 138) and leaves its workers running, unwatched. A --signals-to-handle given still wins.
SIGNALS_TO_HANDLE = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"
SHUTDOWN_SECONDS = 30  # torchrun's wait for its workers after it passed a signal on, before SIGKILL, by default


def root_cause(failed) -> tuple:
    """(status, torchrun's report) of a ChildFailedError: its first failure by time, not its lowest rank."""
    _, failure = failed.get_first_failure()
    return exit_status(failure.exitcode), str(failed).strip()


def handled_signals(args) -> list:
    """The signals torchrun's agent takes (as Ctrl-C: a SignalException) with the flags `args`."""
    names = getattr(args, "signals_to_handle", None) or SIGNALS_TO_HANDLE  # before torch 2.9: four, and ours
    # As torchrun does, a name that is no signal here is left out; so is one that cannot be ignored (SIGKILL).
    found = [getattr(signal, name.strip(), None) for name in names.split(",")]
    return [number for number in found if number is not None and number not in (signal.SIGKILL, signal.SIGSTOP)]


def shutdown_seconds(args) -> int:
    """How long torchrun waits for its workers after passing a signal on: --shutdown-timeout, else
    TORCH_ELASTIC_SHUTDOWN_TIMEOUT, in the torch versions that have them; a fixed 30 s in those before."""
    if not hasattr(args, "shutdown_timeout"):
        return SHUTDOWN_SECONDS
    if args.shutdown_timeout is not None:
        return args.shutdown_timeout
    return int(os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", SHUTDOWN_SECONDS))


def wait_for_the_workers(seconds: float, signals: list) -> None:
    """Ctrl-C again cuts torchrun's wait for its workers short (it has told them to stop at once, with SIGTERM):
    wait for them here, up to `seconds`, so that the launcher ends after its workers. Deaf meanwhile to every signal
    torchrun handles: its handlers are still set and would raise out of the launcher, its workers left running."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in signals}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            # Any child: the launcher's only children are torchrun's workers (the agent's own handles to them are out
            # of reach once its SignalException has unwound it).
            if os.waitpid(-1, os.WNOHANG) == (0, 0):  # some left, none ended since
                time.sleep(0.05)
    except ChildProcessError:  # none left
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def signal_exception(number, frame):
    """What torchrun's agent raises on a signal it handles: it then sends that signal to its workers, waits for
    them, and raises it again (to main, below)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    raise SignalException(f"process {os.getpid()} got signal {number}", sigval=signal.Signals(number))


def main(argv=None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ.setdefault("PET_SIGNALS_TO_HANDLE", SIGNALS_TO_HANDLE)  # the flag's environment variable
    args = parse_args(argv)
    if not hasattr(args, "signals_to_handle"):  # torch < 2.9: pass SIGUSR1 on as its agent does the other four
        signal.signal(signal.SIGUSR1, signal_exception)
    shared = os.environ.get(last_words.LAST_WORDS)  # every node's launcher's (command/imagenet_slurm.sh)
    with contextlib.nullcontext(shared) if shared else tempfile.TemporaryDirectory(prefix="unixkd-torchrun-") as folder:
        words = Path(folder)
        os.environ[last_words.LAST_WORDS] = folder  # the workers inherit it
        try:
            run(args)
            return 0
        except ChildFailedError as failed:
            status, line = last_words.first(words) or root_cause(failed)
        except SignalException as signalled:  # torchrun has passed the signal on and waited for the workers
            wait_for_the_workers(shutdown_seconds(args), handled_signals(args))
            status, line = last_words.first(words) or (128 + signalled.sigval, f"interrupted ({signalled.sigval.name})")
        finally:
            if not shared:
                del os.environ[last_words.LAST_WORDS]
        if line and last_words.claim_the_printing(words):
            print(line, file=sys.stderr)
        return status
