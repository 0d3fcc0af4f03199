"""Stopping on a signal (utils.process.preemption): what each signal means, the stop file, and checks that every
rank makes at the same iterations, about once a second rather than after every iteration."""
import os
import signal
import subprocess
import time

import pytest
import torch

from utils.errors import Interrupted, Preempted
from utils.process import preemption
from utils.process.cli import run_main
from utils.process.preemption import PREEMPTION, STOP_FILE, StopWatch, stopped, stopped_at_once


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_ranks_are_asked_about_once_a_second_not_after_every_iteration(monkeypatch):
    """13 ms an iteration (2,500 images a second in batches of 32): the first check after the first iteration,
    then one every 76 iterations, a second's worth."""
    clock, checked_at, done = Clock(), [], [0]
    monkeypatch.setattr(preemption.distributed, "agree",
                        lambda reason, interval: checked_at.append(done[0]) or (reason, interval))
    watch = StopWatch(clock)
    for done[0] in range(1, 1001):
        clock.now += 0.013
        watch.after_iteration()
    assert checked_at[:3] == [1, 2, 78] and len(checked_at) == 15
    assert {b - a for a, b in zip(checked_at[2:], checked_at[3:])} == {76}


def test_every_rank_checks_at_the_iterations_agreed_not_at_its_own(monkeypatch):
    """This rank would check every 76 iterations; another, slower by its own clock, every 10: all check every 10
    (the smallest interval proposed), so that every rank asks, and stops, after the same iteration."""
    clock, checked_at, done = Clock(), [], [0]
    monkeypatch.setattr(preemption.distributed, "agree",
                        lambda reason, interval: checked_at.append(done[0]) or (reason, min(interval, 10)))
    watch = StopWatch(clock)
    for done[0] in range(1, 101):
        clock.now += 0.013
        watch.after_iteration()
    assert checked_at == [1, 2, *range(12, 101, 10)]


@pytest.mark.parametrize("number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_are_noted_and_end_the_run_with_128_plus_the_signal(number, status, capsys):
    with StopWatch() as watch:
        os.kill(os.getpid(), number)
        reason = watch.check()
    assert reason
    with pytest.raises(SystemExit) as exited:
        run_main(lambda: (_ for _ in ()).throw(stopped(reason, "after iteration 3/9 of epoch 2, saved in last.pth")))
    assert exited.value.code == status
    line = capsys.readouterr().err.strip()
    assert line.endswith(" after iteration 3/9 of epoch 2, saved in last.pth; --resume continues from there")
    assert signal.getsignal(number) is not watch._note  # the handler before it is back


def test_ctrl_c_again_a_second_later_stops_at_once_but_not_the_same_signal_sent_twice():
    clock = Clock()
    with StopWatch(clock) as watch:
        watch._note(signal.SIGINT, None)
        watch._note(signal.SIGINT, None)  # at the same moment: srun and torchrun's agent both passed it on
        watch._note(signal.SIGTERM, None)
        clock.now = 1.5
        with pytest.raises(KeyboardInterrupt):
            watch._note(signal.SIGINT, None)
    assert isinstance(stopped(watch.noted, "here"), Interrupted)


def test_under_torchrun_ctrl_c_again_comes_as_a_sigterm_and_stops_at_once():
    """torchrun's agent passes the first Ctrl-C on as SIGINT; a second one cuts its wait short, and it stops its
    workers with SIGTERM. A SIGTERM alone (kill, SLURM) is noted only: the run saves where it is."""
    clock = Clock()
    with StopWatch(clock) as watch:
        watch._note(signal.SIGTERM, None)
        clock.now = 5.0
        watch._note(signal.SIGINT, None)
        clock.now = 6.5
        with pytest.raises(KeyboardInterrupt):
            watch._note(signal.SIGTERM, None)


def test_the_stop_file_stops_the_run_as_the_preemption_signal_does_and_is_marked_once_saved(tmp_path, monkeypatch):
    """command/imagenet_slurm.sh writes the file (SLURM's signal to the job's shell need not reach torchrun's
    workers); rank 0 watches it, and marks it once the run has saved, so that the script requeues the job."""
    stop = tmp_path / "job.stop"
    monkeypatch.setenv(STOP_FILE, str(stop))
    with StopWatch() as watch:
        assert watch.check() == 0
        stop.write_text("stop\n")
        assert watch.check() == PREEMPTION
        watch.acknowledge(PREEMPTION)
    assert stop.read_text() == "stopped\n" and isinstance(stopped(PREEMPTION, "here"), Preempted)
    monkeypatch.setenv("RANK", "1")  # the other ranks learn of it from rank 0, in the check
    assert StopWatch().stop_file is None


def a_loader_worker():
    """The process id of a DataLoader's worker process, started as the torchvision loader's are (and kept alive)."""
    batches = iter(torch.utils.data.DataLoader(range(64), num_workers=1,
                                               worker_init_fn=preemption.leave_stops_to_the_main_process))
    next(batches)
    return batches, batches._workers[0].pid


def train_a_while() -> None:
    """Signal handlers run in the main thread between the steps of its work (torch's raises on a dead worker)."""
    for _ in range(500):
        time.sleep(0.01)


def test_a_sigterm_that_also_ended_the_loaders_workers_is_a_quiet_stop_with_status_143():
    """SLURM's time limit signals every process: the torchvision loader's workers die of the SIGTERM before the run
    can save, and torch says so in an error. With the SIGTERM noted, that is the stop, at once, not a traceback."""
    batches, worker = a_loader_worker()
    with pytest.raises(KeyboardInterrupt) as stop, StopWatch():
        os.kill(os.getpid(), signal.SIGTERM)
        subprocess.run(["kill", "-TERM", str(worker)], check=True)  # a worker signalled by its parent exits quietly
        train_a_while()
    line = stopped_at_once(stop.value, kept=True)
    assert (str(line), line.status) == ("stopped on SIGTERM; continue with --resume", 143)


def test_a_loader_worker_that_died_without_a_sigterm_to_the_run_is_still_an_error():
    batches, worker = a_loader_worker()
    with pytest.raises(RuntimeError, match=r"^DataLoader worker \(pid \d+\) is killed by signal: Killed"), StopWatch():
        os.kill(worker, signal.SIGKILL)
        train_a_while()
