"""The paper's computation count: the cost of the passes a training run made, against conventional KD's.

Costs are forward multiply-accumulates (MACs) of one image, models.cost's count, which the paper's "FLOPs"
are too: Ft through the teacher, Fs through the student (only their ratio enters the paper's figure;
summary.json names them MACs, one multiply-accumulate being two floating-point operations). A backward
pass costs one forward, so training the student on an image costs 2 * Fs. Per batch of B images
conventional KD spends B*Ft + 2*B*Fs; UNIXKD scores all B images with a no-grad student pass and
then runs teacher and student training on k of them: k*Ft + B*Fs + 2*k*Fs.
"""
import operator

from utils.errors import UserError
from utils.process import distributed


def macs_spent(ft, fs, teacher_images, scoring_images, student_images):
    """MACs of the passes run: teacher forward, student no-grad scoring, student forward+backward."""
    return teacher_images * ft + scoring_images * fs + 2 * student_images * fs


def macs_kd(ft, fs, images):
    """MACs conventional KD spends on the same images: no scoring, teacher and student see all."""
    return macs_spent(ft, fs, images, 0, images)


def relative_computation(ft, fs, batch_size=64, k=48):
    """UNIXKD's computation per full batch as a fraction of KD's (0.8732 for Ft/Fs = 6.12)."""
    return macs_spent(ft, fs, k, batch_size, k) / macs_kd(ft, fs, batch_size)


class ComputationMeter:
    """Counts the images each pass of a training run saw, and prices them against conventional KD.

    The trainer knows n and k on the host, so counting never waits on the GPU. MACs follow from
    the counts (every cost is linear in them), so the state is the counts alone.
    """

    COUNTS = ("batches", "images", "teacher_images", "scoring_images", "student_images")

    def __init__(self, ft, fs):
        self.ft = ft
        self.fs = fs
        self.counts = dict.fromkeys(self.COUNTS, 0)

    def add_batch(self, n, teacher_images, scoring_images, student_images):
        """Count one batch of n images and how many of them went through each pass."""
        passes = {
            "teacher_images": operator.index(teacher_images),
            "scoring_images": operator.index(scoring_images),
            "student_images": operator.index(student_images),
        }
        n = operator.index(n)
        for key, count in passes.items():
            if not 0 <= count <= n:
                raise ValueError(f"{key}={count} is outside 0..{n}, the batch's image count")
        self.counts["batches"] += 1
        self.counts["images"] += n
        for key, count in passes.items():
            self.counts[key] += count

    def sum_over_ranks_since(self, before: dict) -> None:
        """Under DDP each rank counted its own batches since `before` (a copy of counts): add up every rank's."""
        added = distributed.sum_ints_over_ranks([self.counts[key] - before[key] for key in self.COUNTS])
        self.counts = {key: before[key] + more for key, more in zip(self.COUNTS, added)}

    def macs_spent(self):
        c = self.counts
        return macs_spent(self.ft, self.fs, c["teacher_images"], c["scoring_images"], c["student_images"])

    def macs_kd(self):
        return macs_kd(self.ft, self.fs, self.counts["images"])

    def as_dict(self):
        """Plain JSON-able numbers; computation in percent of KD (0.0 before the first batch)."""
        spent, kd = self.macs_spent(), self.macs_kd()
        return {
            **self.counts,
            "macs_spent": spent,
            "macs_kd": kd,
            "computation": 100 * spent / kd if kd else 0.0,
        }

    def state_dict(self):
        return {"ft": self.ft, "fs": self.fs, **self.counts}

    def load_state_dict(self, state):
        # Counts priced at other FLOPs would silently mix two pairs' accounting.
        if (state["ft"], state["fs"]) != (self.ft, self.fs):
            raise ValueError(
                f"meter state is for Ft={state['ft']}, Fs={state['fs']}, this run has Ft={self.ft}, Fs={self.fs}"
            )
        self.counts = {key: state[key] for key in self.COUNTS}


def check_sizes(batch_size, k, b):
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be a positive integer")
    for flag, value in (("--k", k), ("--b", b)):
        if not 1 <= value <= batch_size:
            raise UserError(f"{flag} {value}: must be between 1 and the batch size {batch_size}")
