"""Book-keeping around the UNIX step: the hard-sample counter (step 6) and selection statistics."""
import numpy as np
import torch
import torch.nn.functional as F

from utils.process import distributed


class SelectionCounter:
    """counter[epoch, i] = 1 where training image i was among the b most uncertain of its batch.

    Saved as counter.npy (epochs x dataset size) for the paper's hard-sample analysis.
    Kept on the training device so that recording costs no synchronisation; the current epoch's row is
    a device tensor too, so a recorded CUDA graph writes to the right row in every epoch.
    """

    def __init__(self, epochs: int, num_samples: int, device):
        self.counts = torch.zeros(epochs, num_samples, dtype=torch.uint8, device=device)
        self.row = torch.zeros(1, dtype=torch.int64, device=device)

    def start_epoch(self, epoch: int) -> None:
        self.row.fill_(epoch)

    def record(self, indices: torch.Tensor) -> None:
        # Each image is seen once per epoch, so indices within a call never repeat.
        self.counts[self.row, indices] += 1

    def clear_epoch(self) -> None:
        self.counts[self.row] = 0

    def sum_epoch_over_ranks(self) -> None:
        """Under DDP each rank counted its own images: after this every rank holds the epoch's whole row."""
        row = self.counts[self.row]
        self.counts[self.row] = distributed.sum_over_ranks(row)

    def changed_percent(self, epoch: int):
        """% of the images counted in `epoch` (the b most uncertain of their batch) that were not counted in the
        epoch before: how much of the hard set changes from one epoch to the next. None in the first epoch."""
        if epoch == 0:
            return None
        now, before = self.counts[epoch].bool(), self.counts[epoch - 1].bool()
        counted, new = torch.stack([now.sum(), (now & ~before).sum()]).tolist()  # a sync, once per epoch
        return 100.0 * new / counted if counted else None

    def to_numpy(self) -> np.ndarray:
        return self.counts.cpu().numpy()

    def state_dict(self) -> dict:
        """The rows of the epochs started so far, eight images a byte: a checkpoint a run writes every epoch
        carries 6 KB a CIFAR epoch instead of 12 MB for the whole counter."""
        rows = int(self.row) + 1  # a sync, once per epoch
        packed = np.packbits(self.counts[:rows].cpu().numpy(), axis=1)
        return {"packed": torch.from_numpy(packed), "num_samples": self.counts.shape[1]}

    def load_state_dict(self, state: dict) -> None:
        if "packed" in state:
            counts = np.unpackbits(state["packed"].numpy(), axis=1, count=state["num_samples"])
        else:  # a checkpoint written before the counter was packed
            counts = state["counts"].numpy()
        # A run resumed with a different --epoch keeps the rows both lengths share.
        rows = min(len(self.counts), len(counts))
        self.counts[:rows] = torch.from_numpy(counts[:rows])


STATS = ("confidence", "margin", "entropy")


def prediction_stats(logits: torch.Tensor) -> torch.Tensor:
    """(3, n): each image's confidence (top-1 probability), margin (top1 - top2) and entropy."""
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    top2 = p.topk(2, dim=1).values
    return torch.stack([top2[:, 0], top2[:, 0] - top2[:, 1], -(p * log_p).sum(dim=1)])


def selection_stats(scoring_logits, rank, keep, teacher_logits) -> dict:
    """Sums and counts of the statistics of the selected images, the rest, all, and the teacher on the selected.

    Selected = the first k in uncertainty order, i.e. the images the teacher sees. A handful of
    vectorised ops: this runs every step, where small GPU kernels cost more in launches than in math.
    """
    student = prediction_stats(scoring_logits)
    every = student.sum(dim=1)
    selected = student[:, rank[:keep]].sum(dim=1)
    groups = {
        "selected": (selected, keep),
        "rest": (every - selected, len(rank) - keep),
        "all": (every, len(rank)),
        "teacher_selected": (prediction_stats(teacher_logits).sum(dim=1), keep),
    }
    return {f"select/{stat}_{group}": (totals[i], count)
            for group, (totals, count) in groups.items() for i, stat in enumerate(STATS)}
