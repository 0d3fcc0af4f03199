"""The one error type for problems the user can fix (bad flags, missing or broken data)."""


class UserError(Exception):
    """Bad input, reported as `error: <message>` with exit status 2 and no traceback.

    The message is a single line that says what is wrong and, where possible, how to fix it.
    """


class RunFinished(Exception):
    """--resume on a run that already reached its last epoch: nothing to do, exit status 0."""


class NonFiniteLoss(RuntimeError):
    """Training diverged; the last good checkpoint is kept. Exit status 1."""


class Preempted(Exception):
    """The run saved where it was and stopped on the preemption signal (SIGUSR1); --resume continues it.
    Exit status 75 (EX_TEMPFAIL: try again later)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) in a run, with the hint that fits: --resume where a checkpoint was kept, else start again.
    Exit status `status`: 128 + the signal's number (130 for Ctrl-C's SIGINT, 143 for SIGTERM). An empty message:
    the run stopped at once, where it was (utils.runs.rundir.held_on_main says what was kept)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status
