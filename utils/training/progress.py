"""Progress within a training epoch: an in-place line on a terminal, a plain line now and then elsewhere.

On a terminal the line shows the iterations done, images per second, the share of time spent waiting for
data and the time left in the epoch (under DDP, images per second of the whole job and of each process), rewritten at most twice a second. Off a terminal (SLURM logs, nohup,
a pipe) the same figures are printed as a line of their own every `every` iterations, or every LOG_SECONDS
when `every` is None, so a log shows that a long epoch is moving, as torchvision's reference script does.
"""
import sys
import time

REFRESH_SECONDS = 0.5
LOG_SECONDS = 60.0  # off a terminal, without --print-freq: a line a minute


class EpochProgress:
    def __init__(self, label: str, batches: int, every=None, stream=None, clock=time.perf_counter, first_batch=0,
                 processes=1):
        """first_batch: iterations of the epoch done before (a run resumed mid-epoch); rates count from there.
        processes: DDP's; this process's batches are counted, and the job's rate is that times the processes
        (every rank takes a batch of the same size at each step, in step with the others)."""
        self.label, self.batches, self.every, self.clock, self.first = label, batches, every, clock, first_batch
        self.processes = processes
        self.stream = sys.stdout if stream is None else stream
        self.terminal = self.stream.isatty()
        self.start = self.last_shown = clock()
        self.images, self.data_wait, self.width = 0, 0.0, 0

    def update(self, batches_done: int, batch_images: int, data_wait: float = 0.0) -> None:
        """After each iteration: its image count and the seconds it waited for its batch."""
        self.images += batch_images
        self.data_wait += data_wait
        now = self.clock()
        if not self._due(batches_done, now):
            return
        self.last_shown = now
        if self.terminal:
            self._rewrite(self.line(batches_done, now))
        else:
            self.stream.write(self.line(batches_done, now) + "\n")
            self.stream.flush()

    def _due(self, batches_done: int, now: float) -> bool:
        if self.terminal:
            return now - self.last_shown >= REFRESH_SECONDS
        if batches_done == self.batches:  # the epoch's own line follows at once
            return False
        if self.every is None:
            return now - self.last_shown >= LOG_SECONDS
        return self.every > 0 and batches_done % self.every == 0

    def line(self, batches_done: int, now: float) -> str:
        elapsed, run = max(now - self.start, 1e-9), batches_done - self.first
        left = elapsed * (self.batches - batches_done) / run
        return (f"{self.label} [{batches_done:>{len(str(self.batches))}}/{self.batches}] "
                f"{self._rate(self.images / elapsed)}, data wait {self.data_wait / run:.3f} s/it "
                f"({100 * self.data_wait / elapsed:.0f} %), {format_seconds(left)} left")

    def _rate(self, here: float) -> str:
        if self.processes == 1:
            return f"{here:,.0f} img/s"
        return f"{here * self.processes:,.0f} img/s in all ({here:,.0f} per process)"

    def _rewrite(self, line: str) -> None:
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        """Clear the in-place line, so that the epoch's summary line is printed in its place."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def format_seconds(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
