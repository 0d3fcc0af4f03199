"""A run killed at any moment and restarted with --resume ends exactly where the uninterrupted run does."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models import model_dict
from utils.synthetic import write_synthetic_cifar100

REPO = Path(__file__).resolve().parents[1]
# One thread: a 2-core machine shared with pytest itself runs these small steps faster without
# OpenMP workers competing for the cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A teacher in the authors' published layout; untrained weights are enough to distil from."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("zoo") / "resnet8.pth"
    torch.save({"state_dict": model_dict["resnet8"](num_classes=100).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """300 training images: 5 batches an epoch, enough to cross a batch boundary and a milestone."""
    return write_synthetic_cifar100(tmp_path_factory.mktemp("tiny"), train_per_class=3, test_per_class=1)


def student_command(teacher_file, data_root, experiments, *extra, graphs=False):
    """graphs: --cuda-graphs through the CPU stand-in (tests/graph_stand_in.py), which records and replays."""
    runner = [sys.executable, "tests/graph_stand_in.py"] if graphs else [sys.executable]
    return [*runner, "student_v0.py", "--teacher-path", str(teacher_file), "--student-arch", "resnet8",
            "--epoch", "3", "--milestones", "2", "--data-root", str(data_root),
            "--experiments-dir", str(experiments), *extra]


def run_dir(experiments):
    (run,) = experiments.glob("v0_student_*")
    return run


def kill_after_first_epoch(command) -> None:
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    experiments = Path(command[command.index("--experiments-dir") + 1])
    deadline = time.monotonic() + 120
    while not list(experiments.glob("v0_student_*/ckpt/last.pth")):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def whole_run(teacher_file, tiny_root, tmp_path_factory):
    """The uninterrupted run, eager."""
    whole = tmp_path_factory.mktemp("whole")
    subprocess.run(student_command(teacher_file, tiny_root, whole), cwd=REPO, env=ENV, check=True, capture_output=True)
    return whole


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graphs"])
def test_kill_and_resume_matches_the_uninterrupted_run(teacher_file, tiny_root, whole_run, tmp_path, graphs):
    """Killed after epoch 1, resumed across the milestone (after epoch 2); with graphs (through the CPU
    stand-in) the resumed process records afresh and must still end where the eager, uninterrupted run does."""
    whole, resumed = whole_run, tmp_path / "resumed"
    flags = ["--cuda-graphs"] if graphs else []
    kill_after_first_epoch(student_command(teacher_file, tiny_root, resumed, *flags, graphs=graphs))
    assert torch.load(run_dir(resumed) / "ckpt" / "last.pth", weights_only=True)["epoch"] < 3
    done = subprocess.run(student_command(teacher_file, tiny_root, resumed, *flags, "--resume", graphs=graphs),
                          cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert "resumed" in done.stdout and "running eagerly" not in done.stderr

    a, b = run_dir(whole), run_dir(resumed)
    final_a = torch.load(a / "ckpt" / "last.pth", weights_only=True)
    final_b = torch.load(b / "ckpt" / "last.pth", weights_only=True)
    for key, tensor in final_a["state_dict"].items():
        assert torch.equal(tensor, final_b["state_dict"][key]), key
    assert np.array_equal(np.load(a / "counter.npy"), np.load(b / "counter.npy"))
    summary_a, summary_b = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    for key in ("best_acc", "last_acc", "epochs_done", "computation"):
        assert summary_a[key] == summary_b[key], key
