"""Run directories: never overwritten silently, never shared by two live runs."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from utils.errors import Interrupted, RunFinished, UserError
from utils.runs.checkpoint import atomic_save
from utils.runs.rundir import held_on_main, open_run


def finished_run(path, epoch=2):
    atomic_save({"epoch": epoch}, path / "ckpt" / "last.pth")
    (path / "summary.json").write_text("{}")


def test_a_directory_is_locked_while_its_run_lives(tmp_path):
    run, resume = open_run(tmp_path / "run", resume=False, force=False, epochs=2)
    assert resume is None
    assert (tmp_path / "run" / "run.lock").read_text() == f"{socket.gethostname()} pid {os.getpid()}\n"
    with pytest.raises(UserError, match=f"in use by another run .*pid {os.getpid()}"):
        open_run(tmp_path / "run", resume=True, force=False, epochs=2)
    run.release()
    open_run(tmp_path / "run", resume=True, force=False, epochs=2)[0].release()


def test_a_run_that_ends_takes_its_lock_file_with_it(tmp_path):
    run, _ = open_run(tmp_path / "run", resume=False, force=False, epochs=2)
    atomic_save({"epoch": 1}, run.last)
    run.release()
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt"]


def test_a_lock_taken_on_a_lock_file_its_run_removed_is_taken_again_on_the_new_one(tmp_path, monkeypatch):
    """This process opened run.lock just before the run holding it ended and removed it: its lock on the
    removed file would guard nothing, so it opens run.lock again and locks that."""
    import fcntl

    import utils.runs.rundir as rundir

    calls, flock = [], fcntl.flock

    def after_the_holder_ended(file, operation):
        if not calls:
            os.unlink(tmp_path / "run" / "run.lock")
        calls.append(file)
        flock(file, operation)

    monkeypatch.setattr(rundir.fcntl, "flock", after_the_holder_ended)
    run, _ = open_run(tmp_path / "run", resume=False, force=False, epochs=2)
    assert len(calls) == 2
    assert os.stat(tmp_path / "run" / "run.lock").st_ino == os.fstat(run._lock_file.fileno()).st_ino
    run.release()


def test_an_existing_run_is_refused_without_resume_or_force(tmp_path):
    finished_run(tmp_path)
    with pytest.raises(UserError, match="already holds a run; pass --resume .*, --force .*, or --tag NAME"):
        open_run(tmp_path, resume=False, force=False, epochs=2)
    assert (tmp_path / "ckpt" / "last.pth").exists()
    open_run(tmp_path, resume=True, force=False, epochs=3)[0].release()  # a refusal releases the lock


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    finished_run(tmp_path)
    with pytest.raises(RunFinished):
        open_run(tmp_path, resume=True, force=False, epochs=2)


def test_resume_of_an_unfinished_run_returns_its_state(tmp_path):
    finished_run(tmp_path, epoch=1)
    run, state = open_run(tmp_path, resume=True, force=False, epochs=2)
    assert state == {"epoch": 1}
    run.release()


def test_force_starts_over(tmp_path):
    finished_run(tmp_path)
    run, state = open_run(tmp_path, resume=False, force=True, epochs=2)
    assert state is None and sorted(os.listdir(tmp_path)) == ["run.lock"]
    run.release()


def test_a_start_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    run, _ = open_run(tmp_path / "run", resume=False, force=False, epochs=2)
    (tmp_path / "run" / "tensorboard").mkdir()
    (tmp_path / "run" / "tensorboard" / "events.out").write_text("epoch 1, half done")
    run.release()
    assert list(tmp_path.iterdir()) == []


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_AND_WAIT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().startswith("run folder: ")
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match="in use"):
        open_run(tmp_path, resume=True, force=False, epochs=2)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run, _ = open_run(tmp_path, resume=True, force=False, epochs=2)
    run.release()


LOCK_AND_WAIT = """
import sys, time
from utils.runs.rundir import held_on_main, open_run
run, _ = open_run(sys.argv[1], resume=False, force=False, epochs=2)
print("locked", flush=True)
time.sleep(60)
"""


def test_ctrl_c_hints_at_resume_only_where_a_checkpoint_was_kept(tmp_path):
    run, _ = open_run(tmp_path / "first-epoch", resume=False, force=False, epochs=2)
    with pytest.raises(Interrupted, match="nothing was kept; run the same command again"), held_on_main(run):
        raise KeyboardInterrupt
    assert not (tmp_path / "first-epoch").exists()
    run, _ = open_run(tmp_path / "later", resume=False, force=False, epochs=2)
    with pytest.raises(Interrupted, match="^interrupted; continue with --resume$"), held_on_main(run):
        atomic_save({"epoch": 1}, run.last)
        raise KeyboardInterrupt
