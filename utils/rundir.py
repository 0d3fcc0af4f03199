"""A run directory that is never overwritten by accident and never shared by two live runs."""
import fcntl
import os
import shutil
import socket
from pathlib import Path

from utils.checkpoint import load_checkpoint
from utils.errors import RunFinished, UserError

LOCK_NAME = "run.lock"


class RunDirectory:
    def __init__(self, path):
        self.path = Path(path)
        self.ckpt = self.path / "ckpt"
        self.last = self.ckpt / "last.pth"
        self.tensorboard = self.path / "tensorboard"
        self._lock = self.path / LOCK_NAME

    def holds_run(self) -> bool:
        return self.ckpt.is_dir() and any(self.ckpt.glob("*.pth"))

    def acquire(self) -> None:
        """Hold an exclusive lock on run.lock for the life of this process.

        The kernel drops the lock when the process dies, SIGKILL included, so a crashed run never
        blocks its own --resume, on this host or (on file systems with working locks) another.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self._lock, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.seek(0)
            owner = self._lock_file.read().strip() or "unknown process"
            self._lock_file.close()
            raise UserError(f"{self.path} is in use by another run ({owner}); wait for it or stop it") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        self._lock_file.flush()

    def release(self) -> None:
        # The file stays: removing a lock file that another process may have just opened is a race.
        self._lock_file.close()

    def clear_outputs(self) -> None:
        for child in self.path.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def open_run(path, *, resume: bool, force: bool, epochs: int):
    """Lock the run directory and return (run, last checkpoint to resume from, or None).

    An existing run is refused unless --resume (continue it) or --force (start over).
    """
    run = RunDirectory(path)
    run.acquire()
    try:
        if not run.holds_run():
            if resume:
                print(f"nothing to resume in {run.path}: starting from scratch")
            return run, None
        if force:
            print(f"--force: discarding the previous run in {run.path}")
            run.clear_outputs()
            return run, None
        if not resume:
            raise UserError(f"{run.path} already holds a run; pass --resume to continue it or --force to start over")
        if not run.last.is_file():
            raise UserError(f"{run.path} holds checkpoints but no ckpt/last.pth to resume from; use --force to start over "
                            f"(or, for a published teacher put there by hand, `python -m utils.teachers import "
                            f"{run.ckpt}/best.pth --force` marks it finished: docs/teachers.md)")
        state = load_checkpoint(run.last)
        if state["epoch"] >= epochs:
            raise RunFinished(f"{run.path} already finished {state['epoch']} epochs; nothing to resume")
        return run, state
    except BaseException:
        run.release()
        raise
