"""python -m utils.sync_check: the host synchronisations of a training run, counted step by step (on a CPU, the
host reads of tensor values and their copies to the host, which a GPU would wait for)."""
import re
import warnings

import pytest
import torch

from utils.errors import UserError
from utils.tools import sync_check
from utils.training.steps import SupervisedStep


def test_a_host_read_or_copy_inside_a_training_step_is_counted_in_that_step_and_the_loss_points_outside(
        tiny_table, tmp_path, capsys, monkeypatch):
    """.item() reaches an operator on a CPU, .tolist() none: a GPU waits on both. TensorBoard's loss every
    iteration (--log-freq 1) reads the step's sums after each step, outside it."""
    original, outside = SupervisedStep.__call__, {}
    for read, log_freq in ((lambda x: x.sum().item(), 0), (lambda x: x.sum().tolist(), 1)):
        monkeypatch.setattr(SupervisedStep, "__call__", lambda self, x, y, idx: [read(x), original(self, x, y, idx)][1])
        sync_check.main(["teacher.py", "--arch", "resnet8", "--epoch", "1", "--data-root", str(tiny_table.data_root),
                         "--experiments-dir", str(tmp_path / str(log_freq)), "--log-freq", str(log_freq)])
        out = capsys.readouterr().out  # 100 images: 2 steps of batch 64
        assert "host syncs: 2 inside 2 training steps (steps 1, 2); " in out and "as a deliberate one was first" in out
        outside[log_freq] = int(re.search(r"; (\d+) outside", out)[1])
    assert outside[1] == outside[0] + 2


def test_only_the_training_scripts_are_run():
    with pytest.raises(UserError, match="SCRIPT one of teacher.py, student_v0.py; got quickstart.py"):
        sync_check.main(["quickstart.py"])


def test_on_cuda_torchs_sync_warnings_are_counted_and_other_warnings_shown(monkeypatch):
    """A stand-in for CUDA's sync debug mode: warnings with torch's words are counted, not shown; others shown."""
    modes, shown = [], []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: shown.append(str(message)))
    count = sync_check.SyncCount()
    with sync_check.cuda_syncs(count):
        for _ in range(2):
            warnings.warn("called a synchronizing CUDA operation (Triggered internally at "
                          "/pytorch/c10/cuda/CUDAFunctions.cpp:156.)")
        warnings.warn("an unrelated warning")
    assert count.total == 2 and shown == ["an unrelated warning"] and modes == ["warn", "default"]


def test_a_counter_that_misses_a_deliberate_sync_says_it_is_broken_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(sync_check, "deliberate_sync", lambda device: None)
    assert sync_check.main(["teacher.py", "--arch", "resnet8"]) == 1
    assert capsys.readouterr().out == "sync counter BROKEN: a deliberate synchronisation on cpu was not counted\n"
