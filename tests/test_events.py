"""TensorBoard event files (utils.runs.events): what flush() has returned from survives the process dying at once."""
import os

from tests.event_files import scalars
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
