"""Run directories: never overwritten silently, never shared by two live runs."""
import os
import socket

import pytest

from utils.errors import RunFinished, UserError
from utils.rundir import RunDirectory, open_run
from utils.checkpoint import atomic_save


def finished_run(path, epoch=2):
    atomic_save({"epoch": epoch}, path / "ckpt" / "last.pth")
    (path / "summary.json").write_text("{}")


def test_a_new_directory_is_locked_while_the_run_lives(tmp_path):
    run, resume = open_run(tmp_path / "run", resume=False, force=False, epochs=2)
    assert resume is None
    lock = (tmp_path / "run" / "run.lock").read_text()
    assert lock == f"{socket.gethostname()} {os.getpid()}"
    with pytest.raises(UserError, match="in use by another run"):
        open_run(tmp_path / "run", resume=True, force=False, epochs=2)
    run.release()
    assert not (tmp_path / "run" / "run.lock").exists()


def test_an_existing_run_is_refused_without_resume_or_force(tmp_path):
    finished_run(tmp_path)
    with pytest.raises(UserError, match="already holds a run; pass --resume .* or --force"):
        open_run(tmp_path, resume=False, force=False, epochs=2)
    assert (tmp_path / "ckpt" / "last.pth").exists()
    assert not (tmp_path / "run.lock").exists()  # a refusal releases the lock


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


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    dead_pid = 2 ** 22 + 12345  # above the default pid_max: no such process
    RunDirectory(tmp_path).path.mkdir(exist_ok=True)
    (tmp_path / "run.lock").write_text(f"{socket.gethostname()} {dead_pid}")
    run, _ = open_run(tmp_path, resume=True, force=False, epochs=2)
    assert (tmp_path / "run.lock").read_text().endswith(str(os.getpid()))
    run.release()
