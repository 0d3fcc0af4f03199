"""python -m utils.torchrun: torchrun whose last line is the run's `error:` line or hint, with rank 0's status."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed.run
from torch.distributed.elastic.multiprocessing.api import SignalException

from utils.errors import Preempted
from utils.process import distributed, launch
from utils.process.cli import LAST_WORDS, run_main

REPO = Path(__file__).resolve().parents[1]


def test_a_bad_flag_under_torchrun_ends_with_the_error_line_and_its_status(tmp_path):
    command = [sys.executable, "-m", "utils.torchrun", "--nproc_per_node=2", "teacher.py", "--dataset", "imagenet",
               "--arch", "imagenet_resnet18", "--batch-size", "3", "--data-root", str(tmp_path / "data"),
               "--experiments-dir", str(tmp_path / "e")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == ("error: --batch-size 3 is not divisible by the world size 2 (processes "
                                            "started by torchrun); use a multiple of 2")
    assert "Traceback" not in done.stderr and done.stderr.count("error: --batch-size") == 1


def test_ctrl_c_under_the_launcher_gives_rank_0s_hint_once_and_no_traceback(monkeypatch, capsys):
    def interrupted_run(args):
        os.environ["RANK"] = "0"  # as in a worker: rank 0 leaves its word, then the agent gets the signal too
        with pytest.raises(SystemExit):
            run_main(lambda: (_ for _ in ()).throw(KeyboardInterrupt("interrupted; continue with --resume")))
        del os.environ["RANK"]
        raise SignalException("got SIGINT", signal.SIGINT)

    monkeypatch.setattr(torch.distributed.run, "run", interrupted_run)
    monkeypatch.delenv(LAST_WORDS, raising=False)
    assert launch.main(["--nproc_per_node=2", "teacher.py"]) == 130
    assert capsys.readouterr().err == "interrupted; continue with --resume\n" and LAST_WORDS not in os.environ


def test_a_rank_other_than_0_leaves_ctrl_c_to_rank_0(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    try:
        with pytest.raises(SystemExit) as exited, distributed.main_speaks():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C went on past rank 1's main_speaks: it would print the hint a second time")
    assert exited.value.code == 130 and capsys.readouterr().err == ""


def test_the_preemption_stop_under_the_launcher_ends_with_rank_0s_line_and_status_75(tmp_path, monkeypatch, capsys):
    """Rank 0's "stopped on the preemption signal ... --resume continues" is the launcher's last line, not
    torchrun's failure report."""
    words = tmp_path / "rank0"
    monkeypatch.setenv(LAST_WORDS, str(words))
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exited:
        run_main(lambda: (_ for _ in ()).throw(Preempted("stopped; --resume continues")))
    assert exited.value.code == 75 and launch.rank_0_word(words) == (75, "stopped; --resume continues")
    assert capsys.readouterr().out == ""
