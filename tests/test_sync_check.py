"""python -m utils.sync_check: the host synchronisations of a training run, counted step by step (on a CPU, the
host reads of tensor values that a GPU would wait for)."""
import pytest

from utils.errors import UserError
from utils.tools import sync_check
from utils.training.steps import SupervisedStep


def test_a_host_read_inside_a_training_step_is_counted_in_that_step(tiny_table, tmp_path, capsys, monkeypatch):
    original = SupervisedStep.__call__
    monkeypatch.setattr(SupervisedStep, "__call__", lambda self, x, y, idx: [x.sum().item(), original(self, x, y, idx)][1])
    sync_check.main(["teacher.py", "--arch", "resnet8", "--epoch", "1", "--data-root", str(tiny_table.data_root),
                     "--experiments-dir", str(tmp_path)])  # 100 images: 2 steps of batch 64
    assert "host syncs: 2 inside 2 training steps (steps 1, 2); " in capsys.readouterr().out


def test_only_the_training_scripts_are_run():
    with pytest.raises(UserError, match="SCRIPT one of teacher.py, student_v0.py; got quickstart.py"):
        sync_check.main(["quickstart.py"])
