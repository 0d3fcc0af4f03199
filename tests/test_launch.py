"""python -m utils.torchrun: torchrun whose last line is the run's `error:` line or hint, with rank 0's status."""
import os
import signal
import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed.run
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from utils.errors import Preempted
from utils.process import distributed, launch, last_words
from utils.process.cli import run_main
from utils.process.last_words import LAST_WORDS

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


WAITS_FOR_THE_PREEMPTION_SIGNAL = """
import signal, sys, time
from pathlib import Path
from utils.errors import Preempted
from utils.process.cli import run_main

def main():
    def stop(number, frame):
        raise Preempted("stopped on the preemption signal after iteration 3/9 of epoch 1, saved in last.pth")
    signal.signal(signal.SIGUSR1, stop)
    Path(sys.argv[1]).touch()
    time.sleep(20)  # the launcher, not this, ends it

run_main(main)
"""


def test_the_preemption_signal_sent_to_the_launcher_reaches_the_workers_and_ends_with_their_line_and_75(tmp_path):
    """SLURM signals the launcher (srun's task); torchrun's agent dies of a signal it does not pass on, leaving its
    workers running, unwatched (status 138)."""
    (tmp_path / "worker.py").write_text(WAITS_FOR_THE_PREEMPTION_SIGNAL)
    ready = tmp_path / "ready"
    launcher = subprocess.Popen([sys.executable, "-m", "utils.torchrun", "--nproc_per_node=1", "worker.py", str(ready)],
                                cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 30
    while not ready.exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.send_signal(signal.SIGUSR1)
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 75, err
    assert err.splitlines()[-1] == "stopped on the preemption signal after iteration 3/9 of epoch 1, saved in last.pth"


def test_before_torch_2_9_the_launcher_passes_the_preemption_signal_on_itself(monkeypatch, capsys):
    """torchrun before 2.9 has no --signals-to-handle: its agent handles SIGTERM, SIGINT, SIGHUP and SIGQUIT."""
    def signalled_run(args):
        os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(torch.distributed.run, "parse_args", lambda argv: argparse.Namespace())
    monkeypatch.setattr(torch.distributed.run, "run", signalled_run)
    monkeypatch.setattr(launch, "wait_for_the_workers", lambda seconds, signals: None)  # none here
    monkeypatch.delenv("PET_SIGNALS_TO_HANDLE", raising=False)
    previous = signal.signal(signal.SIGUSR1, lambda *_: pytest.fail("the launcher died of SIGUSR1"))
    try:
        assert launch.main(["--nproc_per_node=2", "teacher.py"]) == 128 + signal.SIGUSR1
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert capsys.readouterr().err == "interrupted (SIGUSR1)\n"


def test_ctrl_c_under_the_launcher_gives_rank_0s_hint_once_and_no_traceback(monkeypatch, capsys):
    def interrupted_run(args):
        os.environ["RANK"] = "0"  # as in a worker: rank 0 leaves its word, then the agent gets the signal too
        with pytest.raises(SystemExit):
            run_main(lambda: (_ for _ in ()).throw(KeyboardInterrupt("interrupted; continue with --resume")))
        del os.environ["RANK"]
        raise SignalException("got SIGINT", signal.SIGINT)

    waited = []  # for the workers (below), none here, as long as torchrun did, deaf to the signals it handles
    monkeypatch.setattr(torch.distributed.run, "run", interrupted_run)
    monkeypatch.setattr(launch, "wait_for_the_workers", lambda *wait: waited.append(wait))
    monkeypatch.delenv(LAST_WORDS, raising=False)
    monkeypatch.delenv("PET_SIGNALS_TO_HANDLE", raising=False)
    monkeypatch.delenv("PET_SHUTDOWN_TIMEOUT", raising=False)
    monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "5")  # where torch has it; a fixed 30 s before
    seconds = 5 if hasattr(torch.distributed.run.parse_args(["t.py"]), "shutdown_timeout") else 30
    assert launch.main(["--nproc_per_node=2", "teacher.py"]) == 130
    assert waited == [(seconds, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1])]
    assert capsys.readouterr().err == "interrupted; continue with --resume\n" and LAST_WORDS not in os.environ


def test_after_a_signal_the_launcher_waits_for_its_workers_deaf_to_every_signal_torchrun_handles():
    """Ctrl-C again cuts torchrun's own wait for its workers short (it tells them to stop at once): the launcher
    still ends after them, whatever further signal torchrun handles comes meanwhile (its handlers, still set, would
    raise out of the launcher), not before with its workers running; its handlers are back afterwards."""
    said, handled = [], [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1]
    previous = {number: signal.signal(number, lambda number, frame: said.append(number)) for number in handled}
    try:
        worker = subprocess.Popen(["bash", "-c", "sleep 0.2; kill -INT $PPID; kill -TERM $PPID; kill -USR1 $PPID; "
                                                 "sleep 0.2"])
        launch.wait_for_the_workers(10, handled)
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    with pytest.raises(ChildProcessError):  # ended, and reaped
        os.waitpid(worker.pid, os.WNOHANG)
    assert said == [signal.SIGTERM]  # after the wait


def test_the_launcher_waits_as_long_as_torchrun_does():
    """--shutdown-timeout, else TORCH_ELASTIC_SHUTDOWN_TIMEOUT, else 30 s; a torchrun without the flag waits 30 s."""
    assert launch.shutdown_seconds(torch.distributed.run.parse_args(["--shutdown-timeout=7", "t.py"])) == 7
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "12")
        env.delenv("PET_SHUTDOWN_TIMEOUT", raising=False)
        assert launch.shutdown_seconds(torch.distributed.run.parse_args(["t.py"])) == 12
        assert launch.shutdown_seconds(argparse.Namespace()) == 30
    assert launch.handled_signals(argparse.Namespace()) == [signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                                            signal.SIGQUIT, signal.SIGUSR1]
    assert launch.handled_signals(argparse.Namespace(signals_to_handle="SIGTERM,SIGUSR2")) == [signal.SIGTERM,
                                                                                               signal.SIGUSR2]
    # torchrun leaves out a name it does not know; neither can SIGKILL be ignored during the wait
    assert launch.handled_signals(argparse.Namespace(signals_to_handle="SIGTERM,SIGTREM,SIGKILL")) == [signal.SIGTERM]


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
    monkeypatch.setenv(LAST_WORDS, str(tmp_path))
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exited:
        run_main(lambda: (_ for _ in ()).throw(Preempted("stopped; --resume continues")))
    assert exited.value.code == 75 and last_words.first(tmp_path) == (75, "stopped; --resume continues")
    assert capsys.readouterr().out == ""


def test_another_rank_stopped_under_the_launcher_leaves_the_stops_line_for_the_first_launcher_to_end(
        tmp_path, monkeypatch, capsys):
    """srun ends a step's other tasks once one has exited: where rank 1's launcher ends first (seen on the local
    SLURM cluster), it has the stop's line to print, the one rank 0 says, and rank 1 itself prints nothing."""
    monkeypatch.setenv(LAST_WORDS, str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    line = "stopped on the preemption signal after iteration 2/5 of epoch 1, saved in last.pth; --resume continues"
    with pytest.raises(SystemExit) as exited, distributed.main_speaks():
        raise Preempted(line)
    assert exited.value.code == 75 and last_words.first(tmp_path) == (75, line)
    assert capsys.readouterr().err == ""
    (tmp_path / "rank1").unlink()
    with pytest.raises(SystemExit) as exited, distributed.main_speaks():
        raise KeyboardInterrupt  # stopped at once, before the run was opened: rank 0 says "interrupted"
    assert exited.value.code == 130 and last_words.first(tmp_path) == (130, "interrupted")


def test_the_launcher_ends_with_the_first_line_any_rank_said_and_its_status(tmp_path, monkeypatch):
    """Rank 1 met an error first, rank 0 another later (rank 2 stopped without a line of its own): rank 1's line
    and status end the run, the root cause, not rank 0's. Where no rank said a line, the first status left ends
    it, silently."""
    monkeypatch.setenv(LAST_WORDS, str(tmp_path))
    clock = iter([10.0, 11.0, 12.0])
    monkeypatch.setattr(last_words.time, "time", lambda: next(clock))
    for rank, line, status in (("2", "", 143), ("1", "error: cannot read checkpoint x.pth", 2),
                               ("0", "error: loss became non-finite", 1)):
        monkeypatch.setenv("RANK", rank)
        last_words.leave(line, status)
    assert last_words.first(tmp_path) == (2, "error: cannot read checkpoint x.pth")
    for rank in (0, 1):
        (tmp_path / f"rank{rank}").unlink()
    assert last_words.first(tmp_path) == (143, "")


def node_of_rank_0(args):
    """A launcher's run on rank 0's node: rank 0's next collective fails once rank 1 (on another node) is gone."""
    with pytest.MonkeyPatch.context() as worker:
        worker.setenv("RANK", "0")
        with pytest.raises(SystemExit), distributed.main_speaks():
            raise ConnectionError("Connection closed by peer")
    raise failed_workers((0, 1, 2))


def node_of_rank_1(args):
    """A launcher's run on rank 1's node: rank 1 left its error's line (below) and exited 2."""
    raise failed_workers((0, 2, 1))


@pytest.mark.parametrize("nodes", [(node_of_rank_0, node_of_rank_1), (node_of_rank_1, node_of_rank_0)],
                         ids=["rank-0s-ends-first", "rank-1s-ends-first"])
def test_the_launchers_of_several_nodes_share_the_words_and_the_first_to_end_prints_the_line_once(nodes, tmp_path,
                                                                                                  monkeypatch, capsys):
    """command/imagenet_slurm.sh gives every node's launcher one folder: rank 1's error is every launcher's status,
    and the line is printed once, by whichever launcher ends first (srun may kill the other before it prints)."""
    monkeypatch.setenv(LAST_WORDS, str(tmp_path))
    monkeypatch.delenv("PET_SIGNALS_TO_HANDLE", raising=False)
    with monkeypatch.context() as worker:
        worker.setenv("RANK", "1")
        last_words.leave("error: cannot read checkpoint last.pth", 2)
    said = []
    for run in nodes:
        monkeypatch.setattr(torch.distributed.run, "run", run)
        assert launch.main(["--nnodes=2", "--nproc_per_node=1", "teacher.py"]) == 2
        said.append(capsys.readouterr().err)
    assert said == ["error: cannot read checkpoint last.pth\n", ""]
    assert os.environ[LAST_WORDS] == str(tmp_path) and tmp_path.is_dir()  # the job's folder, the script removes it


def failed_workers(*failures) -> ChildFailedError:
    """torchrun's error for workers (rank, exit code, when it failed) that left no word."""
    found = {}
    for rank, exitcode, when in failures:
        found[rank] = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file="")
        found[rank].timestamp = when
    return ChildFailedError("teacher.py", found)


@pytest.mark.parametrize("failures, status", [([(0, -15, 2), (1, 2, 1)], 2), ([(0, 1, 5), (1, -9, 4)], 137)],
                         ids=["rank-1-first", "rank-1-killed-first"])
def test_without_a_word_the_launcher_exits_with_torchruns_root_cause_a_signal_as_128_plus_it(failures, status,
                                                                                               monkeypatch, capsys):
    """torchrun's root cause is its first failure by time: rank 1 exiting 2 before torchrun killed rank 0 with
    SIGTERM (-15, not 241), or rank 1 killed by SIGKILL (137) before rank 0 failed."""
    def failed(args):
        raise failed_workers(*failures)

    monkeypatch.setattr(torch.distributed.run, "run", failed)
    monkeypatch.delenv("PET_SIGNALS_TO_HANDLE", raising=False)
    assert launch.main(["--nproc_per_node=2", "teacher.py"]) == status
    assert "Root Cause" in capsys.readouterr().err
