"""TensorBoard event files (utils.runs.events): what flush() has returned from survives the process dying at once."""
import inspect
import os

from tests.event_files import scalars
from utils.runs.events import FLUSH_SECONDS, EventsFile
from utils.runs.rundir import RunDirectory


def write_flush_and_die(run: RunDirectory, points: int) -> None:
    """In a child process: a run's writer, `points` points, flush, then death without any clean-up, as a SIGKILL
    just after a commit point."""
    child = os.fork()
    if child == 0:
        status = 1
        try:
            writer = run.events_writer("iterations", purge_step=1)
            for step in range(1, points + 1):
                writer.add_scalar("iteration/train_loss", step / 4, step)
            writer.flush()
            status = 0
        finally:
            os._exit(status)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0


def test_every_point_written_before_a_flush_is_on_disk_when_the_process_dies_just_after(tmp_path):
    run = RunDirectory(tmp_path)
    write_flush_and_die(run, 300)
    points = scalars(run.tensorboard / "iterations")
    assert points == {"iteration/train_loss": {step: step / 4 for step in range(1, 301)}}


def test_the_flush_interval_is_tensorboardxs_own_writers():
    """FLUSH_SECONDS is tensorboardX's SummaryWriter's flush_secs default (120 in 2.6.5), read from the installed
    tensorboardX, where the interval comes from."""
    from tensorboardX import SummaryWriter

    assert FLUSH_SECONDS == inspect.signature(SummaryWriter.__init__).parameters["flush_secs"].default == 120


def test_between_commit_points_the_points_reach_the_file_when_two_minutes_passed_since_the_last_flush(tmp_path):
    """A live TensorBoard sees the per-iteration points within about two minutes, not only when an epoch ends
    or a buffer fills."""
    now = [0.0]
    with EventsFile(tmp_path, clock=lambda: now[0]) as writer:
        writer.add_scalar("iteration/train_loss", 1.0, 1)
        now[0] = FLUSH_SECONDS
        writer.add_scalar("iteration/train_loss", 2.0, 2)
        assert scalars(tmp_path) == {}  # in the file's buffer
        now[0] = FLUSH_SECONDS + 1
        writer.add_scalar("iteration/train_loss", 3.0, 3)
        assert scalars(tmp_path) == {"iteration/train_loss": {1: 1.0, 2: 2.0, 3: 3.0}}
        now[0] = 2 * FLUSH_SECONDS + 1
        writer.add_scalar("iteration/train_loss", 4.0, 4)
        assert sorted(scalars(tmp_path)["iteration/train_loss"]) == [1, 2, 3]  # two minutes since that flush, not yet
