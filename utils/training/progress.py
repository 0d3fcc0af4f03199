"""An in-place progress line for a training epoch, on terminals only.

Log files and pipes keep the trainer's one line per epoch; a person watching a terminal also sees the
iterations done, images per second and the time left in the epoch, rewritten at most twice a second.
"""
import sys
import time

REFRESH_SECONDS = 0.5


class EpochProgress:
    def __init__(self, label: str, batches: int, stream=None, clock=time.perf_counter):
        self.label, self.batches, self.clock = label, batches, clock
        self.stream = sys.stdout if stream is None else stream
        self.enabled = self.stream.isatty()
        self.start = self.last_shown = clock()
        self.images, self.width = 0, 0

    def update(self, batches_done: int, batch_images: int) -> None:
        self.images += batch_images
        now = self.clock()
        if not self.enabled or now - self.last_shown < REFRESH_SECONDS:
            return
        self.last_shown = now
        elapsed = now - self.start
        left = elapsed * (self.batches - batches_done) / batches_done
        line = (f"{self.label} [{batches_done:>{len(str(self.batches))}}/{self.batches}] "
                f"{self.images / elapsed:,.0f} img/s, {format_seconds(left)} left")
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        """Clear the line, so that the epoch's summary line is printed in its place."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"
