"""Stopping on the preemption signal: save where the run is, then stop, so that a requeued job continues there.

SLURM sends a signal some time before it ends a job (sbatch --signal=B:USR1@180 in command/imagenet_slurm.sh,
which passes it to every process of the run). The handler only notes it; the trainer asks after each
iteration, all ranks together, so that every rank stops after the same iteration.
"""
import signal
import threading

from utils.process import distributed

PREEMPTION_SIGNAL = signal.SIGUSR1


class PreemptionWatch:
    """A context that notes PREEMPTION_SIGNAL while it is open (the handler before it is put back after)."""

    def __init__(self):
        self.received, self._previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # Python handles signals there only
            self._previous = signal.signal(PREEMPTION_SIGNAL, self._note)
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(PREEMPTION_SIGNAL, self._previous)
            self._previous = None

    def _note(self, signum, frame) -> None:
        self.received = True

    def requested(self) -> bool:
        """Whether any rank has received the signal. Every rank calls it after the same iteration."""
        return distributed.any_rank(self.received)
