"""A run directory that is never overwritten by accident and never shared by two live runs."""
import contextlib
import fcntl
import os
import shutil
import socket
from pathlib import Path

from utils.errors import RunFinished, UserError
from utils.process import distributed
from utils.process.preemption import stopped_at_once
from utils.runs.checkpoint import load_checkpoint
from utils.runs.resume import check_same_flags
from utils.runs.runnames import SUMMARY_FILE

LOCK_NAME = "run.lock"


class RunDirectory:
    def __init__(self, path):
        self.path = Path(path)
        self.ckpt = self.path / "ckpt"
        self.last = self.ckpt / "last.pth"
        self.tensorboard = self.path / "tensorboard"
        self._lock = self.path / LOCK_NAME
        self._created = []  # the folders acquire() made, deepest first: a failed start removes them

    def events_writer(self, folder: str = "", purge_step=None):
        """A TensorBoard events file of its own in tensorboard/<folder>, written as it is given
        (utils.runs.events). purge_step: where a resumed run starts over (TensorBoard then hides the points at
        or past it)."""
        from utils.runs.events import EventsFile

        return EventsFile(self.tensorboard / folder, purge_step=purge_step)

    def holds_run(self) -> bool:
        return self.ckpt.is_dir() and any(self.ckpt.glob("*.pth"))

    def acquire(self) -> None:
        """Hold an exclusive lock on run.lock for the life of this process.

        The kernel drops the lock when the process dies, SIGKILL included, so a crashed run never
        blocks its own --resume, on this host or (on file systems with working locks) another. A run
        removes run.lock when it ends (release): a lock taken on a file that is no longer run.lock
        holds nothing, so it is taken again on the one there now.
        """
        self._created = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
        self._lock_file = self._open_lock_file()
        while not self._holds_the_lock_file():
            self._lock_file.close()
            self._lock_file = self._open_lock_file()
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        self._lock_file.flush()

    def _open_lock_file(self):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            return open(self._lock, "a+")
        except OSError as error:  # read-only, not a folder, no space: the user's to fix
            self._remove_created()
            raise UserError(f"cannot write the run folder {self.path} ({error.strerror}: {error.filename}); "
                            f"pass --experiments-dir a folder you can write to") from None

    def _holds_the_lock_file(self) -> bool:
        """Lock the open file; whether it is still run.lock (the run that held it may have removed it)."""
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.seek(0)
            owner = self._lock_file.read().strip() or "unknown process"
            self._lock_file.close()
            raise UserError(f"{self.path} is in use by another run ({owner}); wait for it or stop it") from None
        try:
            return os.stat(self._lock).st_ino == os.fstat(self._lock_file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Unlock and remove run.lock (a process that opened it meanwhile locks the next one: acquire);
        a run that stopped before its first checkpoint leaves no folder behind."""
        self._lock.unlink(missing_ok=True)
        if not self.holds_run():
            self._remove_empty_start()
        self._lock_file.close()

    def _remove_empty_start(self) -> None:
        """Remove what a start writes before its first checkpoint, while still holding the lock."""
        shutil.rmtree(self.tensorboard, ignore_errors=True)
        shutil.rmtree(self.ckpt, ignore_errors=True)
        try:
            self.path.rmdir()
        except OSError:  # something else lives there: leave it
            return
        self._remove_created()

    def _remove_created(self) -> None:
        """The folders above the run's that acquire() made (a new --experiments-dir): a failed start
        leaves nothing behind, and a mistyped path no folder of its own."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:  # gone already, or something else lives there now
                pass

    def clear_outputs(self) -> None:
        for child in self.path.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def open_run(path, *, resume: bool, force: bool, epochs: int, args=None, inputs=None, same_process_count=False):
    """Lock the run directory and return (run, last checkpoint to resume from, or None).

    An existing run is refused unless --resume (continue it, with the flags it started with: those not
    given are set in `args`, those given must match, and so must `inputs` and, with same_process_count, the
    number of processes: utils.runs.resume) or --force (start over). With `args`, the run's length is
    args.epoch, read after the run's own flags are kept.
    """
    run = RunDirectory(path)
    run.acquire()
    print(f"run folder: {run.path}")
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
            raise UserError(f"{run.path} already holds a run; pass --resume to continue it, --force to start over, "
                            f"or --tag NAME to give a run with other settings its own folder")
        if not run.last.is_file():
            raise UserError(f"{run.path} holds checkpoints but no ckpt/last.pth to resume from; use --force to start over "
                            f"(or, for a published teacher put there by hand, `python -m utils.teachers import "
                            f"{run.ckpt}/best.pth --force` marks it finished: docs/teachers.md)")
        if args is not None:
            check_same_flags(run.path / SUMMARY_FILE, args, inputs, same_process_count)
            epochs = args.epoch
        state = load_checkpoint(run.last)
        if state["epoch"] >= epochs:
            raise RunFinished(f"{run.path} already finished {state['epoch']} epochs; nothing to resume")
        return run, state
    except BaseException:
        run.release()
        raise


def open_run_on_main(path, **kwargs):
    """(run, resume state) on every rank: rank 0 locks and checks the run directory, the others follow it
    and read the same last.pth. Only rank 0 writes there."""
    if not distributed.active():
        return open_run(path, **kwargs)
    opened = distributed.on_main(lambda: open_run(path, **kwargs))
    if kwargs.get("args") is not None:  # the run's own flags, kept on rank 0, hold on every rank
        vars(kwargs["args"]).update(distributed.broadcast_object(vars(kwargs["args"])))
    resumed = distributed.broadcast_object(opened[1] is not None if distributed.is_main() else None)
    if distributed.is_main():
        return opened
    run = RunDirectory(path)
    return run, load_checkpoint(run.last) if resumed else None


def release_on_main(run) -> None:
    if distributed.is_main():
        run.release()


@contextlib.contextmanager
def held_on_main(run):
    """The run's folder for the block, released after it; Ctrl-C in it says whether there is a run to
    resume (a run stopped before its first checkpoint leaves no folder: utils.runs.rundir.release)."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if str(stop):  # the run saved where it stopped, and says so
            raise
        raise stopped_at_once(stop, run.holds_run()) from None
    finally:
        release_on_main(run)
