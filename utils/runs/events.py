"""TensorBoard event files written in the calling thread, so that what flush() returns from is on disk.

tensorboardX's SummaryWriter hands each event to a thread through a queue, and its flush() flushes only what
that thread has written so far: the events still queued are lost if the process dies (SIGKILL, the OOM
killer) just after. A run's figures must be on disk before ckpt/last.pth says the epoch (or the iterations)
they belong to are done, since a resumed run never writes them again; so each event here is written when it
is given, in tensorboardX's own record format (its EventsWriter), and flush() makes the file reach the disk.
Between those commit points a live TensorBoard still sees new points within about FLUSH_SECONDS, as
tensorboardX's thread let it: an event written that long after the last flush flushes the file.
"""
import time
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.summary import scalar

FLUSH_SECONDS = 120  # tensorboardX's SummaryWriter's flush_secs default


class EventsFile:
    def __init__(self, folder, purge_step=None, clock=time.monotonic):
        """A new events file in `folder`. purge_step: where a resumed run starts over; TensorBoard then hides the
        points at or past it that the folder's earlier files hold. clock: seconds, for the flushes between
        commit points."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._flushed = clock()
        # tensorboardX names a file by the second it opens it and truncates one of the same name, so a run
        # stopped and resumed within a second would lose what it wrote; the nanoseconds after that name keep
        # every file, in the order TensorBoard reads them.
        self._writer = EventsWriter(str(Path(folder) / "events"), f".{time.time_ns()}")
        if purge_step is not None:
            self._write(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.add_summary(scalar(tag, value), step)

    def add_summary(self, summary, step: int = 0) -> None:
        self._write(Event(summary=summary, step=step))

    def flush(self) -> None:
        """Everything written so far, on disk (flushed and fsync'd)."""
        self._writer.flush()
        self._flushed = self._clock()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        self.close()

    def _write(self, event) -> None:
        event.wall_time = time.time()
        self._writer.write_event(event)
        if self._clock() - self._flushed > FLUSH_SECONDS:
            # EventsWriter's one flush also fsyncs: one every two minutes costs nothing a step would notice.
            self.flush()
