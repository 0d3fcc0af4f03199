"""The in-place progress line: terminals only, at most twice a second, cleared at the end of the epoch."""
import io

from utils.training.progress import EpochProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_terminal_sees_iterations_speed_and_time_left_rewritten_in_place():
    stream, clock = Terminal(), Clock()
    progress = EpochProgress("epoch 3/240", batches=10, stream=stream, clock=clock)
    for done in range(1, 5):
        clock.now = done * 0.25  # 64 images every quarter second: 256 img/s
        progress.update(done, 64)
    progress.close()
    shown = stream.getvalue().split("\r")
    assert shown[1:3] == ["epoch 3/240 [ 2/10] 256 img/s, 0:02 left", "epoch 3/240 [ 4/10] 256 img/s, 0:02 left"]
    assert shown[3].strip() == "" and stream.getvalue().endswith("\r")


def test_log_files_and_pipes_get_no_progress_line():
    stream, clock = io.StringIO(), Clock()
    progress = EpochProgress("epoch 1/1", batches=4, stream=stream, clock=clock)
    for done in range(1, 5):
        clock.now = done
        progress.update(done, 64)
    progress.close()
    assert stream.getvalue() == ""
