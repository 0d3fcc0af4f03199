"""A run directory that is never overwritten by accident and never shared by two live runs."""
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
        """Create run.lock atomically; a lock left by a dead process on this host is taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self._lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._lock.read_text().strip()
                if _alive(owner):
                    raise UserError(f"{self.path} is in use by another run ({owner}); wait for it or stop it")
                self._lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return
        raise UserError(f"could not lock {self.path}: {self._lock} keeps reappearing")

    def release(self) -> None:
        self._lock.unlink(missing_ok=True)

    def clear_outputs(self) -> None:
        for child in self.path.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def _alive(owner: str) -> bool:
    host, _, pid = owner.partition(" ")
    if host != socket.gethostname():
        return True  # cannot tell for another machine: assume it is running
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


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
            raise UserError(f"{run.path} holds checkpoints but no ckpt/last.pth to resume from; use --force to start over")
        state = load_checkpoint(run.last)
        if state["epoch"] >= epochs:
            raise RunFinished(f"{run.path} already finished {state['epoch']} epochs; nothing to resume")
        return run, state
    except BaseException:
        run.release()
        raise
