"""Progress within an epoch: in place on a terminal, a plain line every N iterations or every minute elsewhere."""
import io

from utils.training.progress import LOG_SECONDS, EpochProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_epoch(progress, clock, batches, seconds_per_batch, wait=0.0):
    for done in range(1, batches + 1):
        clock.now = done * seconds_per_batch
        progress.update(done, 64, wait)
    progress.close()


def test_a_terminal_sees_iterations_speed_data_wait_and_time_left_rewritten_in_place():
    stream, clock = Terminal(), Clock()
    progress = EpochProgress("epoch 3/240", batches=10, stream=stream, clock=clock)
    run_epoch(progress, clock, 4, 0.25, wait=0.05)  # 64 images every quarter second: 256 img/s, a fifth waiting
    shown = stream.getvalue().split("\r")
    assert shown[1:3] == ["epoch 3/240 [ 2/10] 256 img/s, data wait 0.050 s/it (20 %), 0:02 left",
                          "epoch 3/240 [ 4/10] 256 img/s, data wait 0.050 s/it (20 %), 0:02 left"]
    assert shown[3].strip() == "" and stream.getvalue().endswith("\r")


def test_off_a_terminal_a_line_every_n_iterations_but_not_after_the_last():
    stream, clock = io.StringIO(), Clock()
    run_epoch(EpochProgress("epoch 1/1", batches=6, every=2, stream=stream, clock=clock), clock, 6, 1.0)
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["epoch 1/1 [2/6", "epoch 1/1 [4/6"]
    assert lines[1] == "epoch 1/1 [4/6] 64 img/s, data wait 0.000 s/it (0 %), 0:02 left"


def test_off_a_terminal_by_default_a_line_a_minute_and_none_with_zero():
    stream, clock = io.StringIO(), Clock()
    run_epoch(EpochProgress("epoch 1/9", batches=100, stream=stream, clock=clock), clock, 100, LOG_SECONDS / 10)
    assert [line.split("]")[0] for line in stream.getvalue().splitlines()] == [
        f"epoch 1/9 [{done:3d}/100" for done in range(10, 100, 10)]
    silent, clock = io.StringIO(), Clock()
    run_epoch(EpochProgress("epoch 1/9", batches=100, every=0, stream=silent, clock=clock), clock, 100, 10.0)
    assert silent.getvalue() == ""


def test_a_run_resumed_mid_epoch_counts_its_rates_from_there():
    stream, clock = io.StringIO(), Clock()
    progress = EpochProgress("epoch 2/2", batches=10, every=1, stream=stream, clock=clock, first_batch=6)
    clock.now = 2.0
    progress.update(7, 64, 0.5)
    assert stream.getvalue() == "epoch 2/2 [ 7/10] 32 img/s, data wait 0.500 s/it (25 %), 0:06 left\n"


def test_under_ddp_the_line_gives_the_jobs_rate_and_each_processs():
    """The epoch line's img/s is the job's: so is the progress line's, beside the rate of the process that prints it."""
    stream, clock = io.StringIO(), Clock()
    progress = EpochProgress("epoch 1/2", batches=10, every=1, stream=stream, clock=clock, processes=8)
    clock.now = 2.0
    progress.update(1, 32)
    assert stream.getvalue() == "epoch 1/2 [ 1/10] 128 img/s in all (16 per process), data wait 0.000 s/it (0 %), 0:18 left\n"
