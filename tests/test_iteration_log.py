"""TensorBoard's per-iteration loss: read from the epoch's running sums every N iterations, and only then."""
from pathlib import Path

import torch

import teacher
from utils.training.iteration_log import IterationLog, first_step


class Writer:
    def __init__(self):
        self.points = []

    def add_scalar(self, tag, value, step):
        self.points.append((tag, step, value))


class Sums:
    """The epoch's running sums as the step leaves them, counting how often the host reads them."""

    names = ["train/loss", "train/acc", "train/loss_kd"]

    def __init__(self):
        self.reads, self._totals, self.counts = 0, torch.zeros(3), [0, 0, 0]

    @property
    def totals(self):
        self.reads += 1
        return self._totals

    def add(self, loss: float, images: int) -> None:
        self._totals += torch.tensor([loss * images, 50.0 * images, loss / 2 * images])
        self.counts = [count + images for count in self.counts]


def train(log, sums, epoch, losses, first=0, images=10):
    log.start_epoch(sums, first)
    for done, loss in enumerate(losses, start=first + 1):
        sums.add(loss, images)
        log.after(epoch, done, sums, lr=0.1)


def test_every_nth_iteration_the_loss_terms_mean_since_the_last_point_and_the_lr():
    writer, sums = Writer(), Sums()
    train(IterationLog(writer, every=2, iterations_per_epoch=5), sums, epoch=1, losses=[1.0, 3.0, 5.0, 7.0, 9.0])
    # Epoch 2 (0-based 1) runs iterations 6-10 of the run: points at 6, 8 and 10.
    assert writer.points == [("iteration/train_loss", 6, 1.0), ("iteration/train_loss_kd", 6, 0.5),
                             ("iteration/lr", 6, 0.1),
                             ("iteration/train_loss", 8, 4.0), ("iteration/train_loss_kd", 8, 2.0),
                             ("iteration/lr", 8, 0.1),
                             ("iteration/train_loss", 10, 8.0), ("iteration/train_loss_kd", 10, 4.0),
                             ("iteration/lr", 10, 0.1)]
    assert sums.reads == 3  # once a point, never between


def test_an_epoch_continued_mid_way_averages_from_the_sums_it_was_given_back():
    writer, sums = Writer(), Sums()
    sums.add(100.0, 30)  # the 3 iterations a checkpoint taken mid-epoch had done
    train(IterationLog(writer, every=2, iterations_per_epoch=5), sums, epoch=0, losses=[2.0, 4.0], first=3)
    assert ("iteration/train_loss", 4, 2.0) in writer.points  # iteration 4 alone, not the epoch so far
    assert first_step(epochs_done=0, batches_done=3, iterations_per_epoch=5) == 4


def test_without_a_writer_or_a_frequency_nothing_is_read():
    for log in (IterationLog(None, 2, 5), IterationLog(Writer(), 0, 5)):
        sums = Sums()
        train(log, sums, epoch=0, losses=[1.0] * 5, first=1)
        assert sums.reads == 0


def test_the_flags_help_says_what_a_point_averages_as_the_docs_do(capsys, exit_status):
    """The sums start afresh each epoch: a point is no mean over the last N iterations when an epoch began since."""
    assert exit_status(teacher.main, ["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    docs = " ".join((Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text().split())
    said = "averaged over the iterations since the epoch's last point"
    assert said in help_text and said in docs and "over the last N iterations" not in help_text
