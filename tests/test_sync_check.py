"""python -m utils.sync_check: the host synchronisations of a training run, counted step by step (on a CPU, the
host reads of tensor values and their copies to the host, which a GPU would wait for)."""
import re

import pytest

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
        assert "host syncs: 2 inside 2 training steps (steps 1, 2); " in out
        outside[log_freq] = int(re.search(r"; (\d+) outside", out)[1])
    assert outside[1] == outside[0] + 2


def test_only_the_training_scripts_are_run():
    with pytest.raises(UserError, match="SCRIPT one of teacher.py, student_v0.py; got quickstart.py"):
        sync_check.main(["quickstart.py"])
