"""TensorBoard's per-iteration figures: every N iterations, the training loss (and each of its terms) averaged
over the iterations since the epoch's last point (or its start), and the learning rate.

They are read from the epoch's running sums (utils.training.metrics.EpochSums), which the step adds to on the
device, recorded or not as a CUDA graph: one synchronisation every N iterations, none between. Under DDP
they are rank 0's own images (the per-epoch figures are every rank's). Their steps count iterations, so
they live in a folder of their own: TensorBoard discards, on a resume, every point of a folder at or past
the step it resumes from, and iterations would be far past any epoch.
"""

FOLDER = "iterations"  # under the run's tensorboard/
LOSS_PREFIX = "train/loss"  # the total loss and its terms (train/loss_kd, ...)


class IterationLog:
    def __init__(self, writer, every: int, iterations_per_epoch: int):
        """writer: an events file (utils.runs.events), or None (another rank than 0, or every = 0): nothing is read
        or written."""
        self.writer, self.every, self.per_epoch = writer, every, iterations_per_epoch
        self.active = writer is not None and every > 0
        self._since = None  # ([sum], [count]) where the current average starts; None: the epoch's start (zeros)

    def start_epoch(self, sums, first_batch: int) -> None:
        """A fresh epoch averages from zero; one continued mid-epoch from the sums a checkpoint gave back."""
        self._since = self._read(sums) if first_batch and self.active else None

    def after(self, epoch: int, done: int, sums, lr: float) -> None:
        """After iteration `done` (from 1) of 0-based `epoch`: a point on every N-th iteration of the run."""
        step = epoch * self.per_epoch + done
        if not self.active or step % self.every:
            return
        now = self._read(sums)
        before = self._since or ([0.0] * len(now[0]), [0] * len(now[1]))
        for name, total, count, total_before, count_before in zip(sums.names, *now, *before):
            if name.startswith(LOSS_PREFIX) and count > count_before:
                self.writer.add_scalar(f"iteration/{name.replace('/', '_')}", (total - total_before) /
                                       (count - count_before), step)
        self.writer.add_scalar("iteration/lr", lr, step)
        self._since = now

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    @staticmethod
    def _read(sums) -> tuple:
        return sums.totals.tolist(), list(sums.counts)  # the one synchronisation


def first_step(epochs_done: int, batches_done: int, iterations_per_epoch: int) -> int:
    """The first iteration a (resumed) run logs: TensorBoard's purge step for the per-iteration folder."""
    return epochs_done * iterations_per_epoch + batches_done + 1
