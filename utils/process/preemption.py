"""Stopping on a signal: save where the run is, mid-epoch, then stop, so that --resume (or a requeued job) continues there.

The stops, each noted by a handler while the training loop runs:
- the preemption signal, SIGUSR1, or the stop file named by UNIXKD_STOP_FILE, which rank 0 watches:
  command/imagenet_slurm.sh writes it when SLURM signals the job's shell before the time limit, a path that
  reaches the run whatever SLURM's process tracker signals (torchrun starts each worker in a session of its
  own, out of reach of a signal to the task's process group). Exit status 75: requeue it.
- SIGTERM (`kill`, torchrun's agent when it stops its workers): status 143. A SIGTERM sent to every process
  (SLURM's time limit) ends the torchvision loader's worker processes too, before the run can save: then the
  run stops at once, from its last checkpoint, with one line and status 143 all the same.
- SIGINT (Ctrl-C; torchrun's agent passes it to the workers): status 130. Ctrl-C again, a second or more
  later (a signal sent twice, by srun and by torchrun's agent, comes at once), ends the run at once
  (KeyboardInterrupt), from its last checkpoint; so does a SIGTERM that late after it, which is how torchrun's
  agent passes on a second Ctrl-C.

The handlers only note the stop. Under DDP every rank must stop after the same iteration, so the ranks agree in
one small all-reduce, at iterations they all know: the interval in iterations is agreed at each check, from the
time an iteration takes, so that a check comes about every CHECK_SECONDS (not every iteration: at 2,500 images
per second per GPU an iteration of 32 images takes 13 ms).
"""
import math
import os
import signal
import threading
import time

from utils.errors import Interrupted, Preempted
from utils.process import distributed
from utils.process.cli import stop_status
from utils.process.files import atomic_write_text

PREEMPTION_SIGNAL = signal.SIGUSR1
STOP_FILE = "UNIXKD_STOP_FILE"
STOPPED_MARK = "stopped\n"  # what rank 0 writes into the stop file once the run has saved and stops
AGAIN_SECONDS = 1.0  # a second Ctrl-C this long after the first is the user's, not the same signal sent twice
CHECK_SECONDS = 1.0  # between two checks: well inside torchrun's 30 s grace after it passes a signal on
MOST_ITERATIONS_BETWEEN_CHECKS = 1000
# A stop's reason, as agreed by the ranks (the largest noted on any rank); 0: none.
PREEMPTION, TERMINATION, INTERRUPTION = 1, 2, 3
REASONS = {PREEMPTION_SIGNAL: PREEMPTION, signal.SIGTERM: TERMINATION, signal.SIGINT: INTERRUPTION}


class StopWatch:
    """A context that notes the stop signals while it is open (the handlers before it are put back after), and
    tells the trainer, at iterations every rank agrees on, whether to stop and why."""

    def __init__(self, clock=time.monotonic):
        self.noted, self.clock, self._previous, self._interrupted_at, self.terminated = 0, clock, {}, None, False
        self.stop_file = os.environ.get(STOP_FILE) if distributed.is_main() else None
        self._until_check, self._since, self._last_check = 1, 0, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # Python handles signals there only
            self._previous = {number: signal.signal(number, self._note) for number in REASONS}
        return self

    def __exit__(self, kind, error, traceback):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        if self.terminated and ended_a_loader_worker(error):  # the SIGTERM reached the loader's workers too
            raise Interrupted("", status=128 + signal.SIGTERM) from None

    def _note(self, number, frame) -> None:
        if number == signal.SIGINT:
            self._interrupted()
        elif number == signal.SIGTERM:
            self.terminated = True
            self._again()
        self.noted = max(self.noted, REASONS[number])

    def _interrupted(self) -> None:
        if self._interrupted_at is None:
            self._interrupted_at = self.clock()
            if distributed.is_main():  # straight to the file: print() may be busy where the signal came
                os.write(2, b"\ninterrupted: the run saves where it is and stops (Ctrl-C again to stop at once)\n")
        else:
            self._again()

    def _again(self) -> None:
        """Ctrl-C again, or the SIGTERM that torchrun's agent sends on a second Ctrl-C: stop now, if it came late
        enough after the first Ctrl-C not to be the same one passed on twice."""
        if self._interrupted_at is not None and self.clock() - self._interrupted_at >= AGAIN_SECONDS:
            raise KeyboardInterrupt

    def after_iteration(self) -> int:
        """After each training iteration, on every rank: the reason to stop now (every rank gets the same), or 0."""
        self._since += 1
        self._until_check -= 1
        return self.check() if self._until_check <= 0 else 0

    def check(self) -> int:
        """Every rank at once (an epoch's end, or the iteration agreed at the last check): the reason to stop, or 0."""
        if self.stop_file and os.path.exists(self.stop_file):
            self.noted = max(self.noted, PREEMPTION)
        reason, self._until_check = distributed.agree(self.noted, self._interval())
        self._since, self._last_check = 0, self.clock()
        return reason

    def _interval(self) -> int:
        """This rank's proposal for the iterations until the next check: about CHECK_SECONDS' worth."""
        if self._last_check is None or not self._since:
            return 1
        per_iteration = (self.clock() - self._last_check) / self._since
        if per_iteration <= 0:
            return MOST_ITERATIONS_BETWEEN_CHECKS
        return max(1, min(MOST_ITERATIONS_BETWEEN_CHECKS, math.floor(CHECK_SECONDS / per_iteration)))

    def acknowledge(self, reason: int) -> None:
        """Rank 0, once it has saved: mark the stop file, so that the batch script requeues the job (a run that
        ended otherwise leaves the file as the script wrote it, and is not requeued)."""
        if reason == PREEMPTION and self.stop_file and os.path.exists(self.stop_file):
            atomic_write_text(self.stop_file, STOPPED_MARK)


def leave_stops_to_the_main_process(worker_id: int = 0) -> None:
    """A DataLoader worker's start: out of reach of the stop signals meant for the run. Ctrl-C reaches the terminal's
    whole process group, and torchrun's agent signals each of its workers' (os.killpg); dead of one, the loader's
    workers would fail the next batch before the run saves. So a worker takes a process group of its own and
    ignores SIGINT and the preemption signal; SIGTERM sent to it still ends it (torch ends its workers so)."""
    os.setpgid(0, 0)
    for number in (signal.SIGINT, PREEMPTION_SIGNAL):
        signal.signal(number, signal.SIG_IGN)


def ended_a_loader_worker(error) -> bool:
    """Whether `error` is torch's DataLoader telling that a worker process of its is gone ("DataLoader worker (pid
    N) is killed by signal: Terminated.", "DataLoader worker (pid(s) N) exited unexpectedly")."""
    return isinstance(error, RuntimeError) and str(error).startswith("DataLoader worker (pid")


def stopped(reason: int, where: str) -> BaseException:
    """The exception that ends a run stopped for `reason`; `where`: where it stopped and what it saved."""
    if reason == PREEMPTION:
        return Preempted(f"stopped on the preemption signal {where}; --resume continues from there")
    if reason == TERMINATION:
        return Interrupted(f"stopped on SIGTERM {where}; --resume continues from there", status=128 + signal.SIGTERM)
    return Interrupted(f"interrupted {where}; --resume continues from there", status=128 + signal.SIGINT)


def stopped_at_once(stop: KeyboardInterrupt, kept: bool) -> Interrupted:
    """The exception that ends a run that stopped where it was, without saving (Ctrl-C again, a SIGTERM that ended
    the loader's workers too); `kept`: whether a checkpoint of an earlier epoch is there to continue from."""
    status = stop_status(stop)
    what = "interrupted" if status == 128 + signal.SIGINT else f"stopped on {signal.Signals(status - 128).name}"
    if kept:
        return Interrupted(f"{what}; continue with --resume", status)
    return Interrupted(f"{what} before the first epoch ended: nothing was kept; run the same command again to start "
                       f"over", status)
