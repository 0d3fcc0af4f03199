"""Per-epoch running sums and the non-finite check, kept on the training device and updated in place.

Reading a GPU value forces a host-device synchronisation; summing on the device and reading everything
once per epoch keeps the training step free of them. Updating preallocated buffers in place, rather than
making new tensors, is what lets a recorded CUDA graph (utils/training/graphs.py) keep adding into them.
"""
import torch

from utils.process import distributed


class EpochSums:
    """Named sums in one device vector, added in one kernel per step; their counts are kept on the host."""

    def __init__(self):
        self.names, self.totals, self.counts = None, None, None

    def add(self, terms: dict) -> tuple:
        """Device part: add {name: (total, count)}; returns the counts for `count()` (host values only)."""
        totals = torch.stack([total.detach().float() for total, _ in terms.values()])
        if self.totals is None:
            self.names, self.totals, self.counts = list(terms), torch.zeros_like(totals), [0] * len(terms)
        elif list(terms) != self.names:
            raise ValueError(f"sums were started with {self.names}, got {list(terms)}")
        self.totals.add_(totals)
        return tuple(count for _, count in terms.values())

    def count(self, counts: tuple) -> None:
        """Host part: the counts that `add` returned (replayed graphs return the same counts again)."""
        self.counts = [old + new for old, new in zip(self.counts, counts)]

    def reset(self) -> None:
        if self.totals is not None:
            self.totals.zero_()
            self.counts = [0] * len(self.names)

    def totals_over_ranks(self) -> dict:
        """{name: (sum, count)} so far over every rank: what a checkpoint taken mid-epoch keeps."""
        if self.totals is None:
            return {}
        values = distributed.sum_over_ranks(self.totals).tolist()
        return dict(zip(self.names, zip(values, distributed.sum_ints_over_ranks(self.counts))))

    def restore(self, saved: dict, device) -> None:
        """Continue from totals_over_ranks() (one rank takes them, the others start from zero)."""
        if not saved:
            return
        totals = torch.tensor([total for total, _ in saved.values()], dtype=torch.float32)
        if self.totals is None:
            self.names, self.totals = list(saved), torch.zeros_like(totals, device=device)
        elif list(saved) != self.names:
            raise ValueError(f"sums were started with {self.names}, the checkpoint has {list(saved)}")
        self.totals.copy_(totals)  # in place: a recorded CUDA graph keeps adding into this tensor
        self.counts = [count for _, count in saved.values()]

    def means(self) -> dict:
        """The means over every rank's images (under DDP the sums and counts are added up over ranks first)."""
        if self.totals is None:
            return {}
        values = distributed.sum_over_ranks(self.totals).tolist()  # the one sync
        counts = distributed.sum_ints_over_ranks(self.counts)
        return {name: value / count for name, value, count in zip(self.names, values, counts) if count}


class NonFiniteWatch:
    """The index of the first step whose loss was not finite (-1 while none was), tracked on the device."""

    def __init__(self, device):
        self.first = torch.full((), -1, dtype=torch.int64, device=device)
        self.steps = torch.zeros((), dtype=torch.int64, device=device)

    def observe(self, loss: torch.Tensor) -> None:
        newly_bad = torch.isfinite(loss).logical_not_().logical_and_(self.first < 0)
        torch.where(newly_bad, self.steps, self.first, out=self.first)
        self.steps.add_(1)

    def reset(self) -> None:
        self.first.fill_(-1)
        self.steps.zero_()

    def first_bad_step(self) -> int:
        """-1, or a step at which some rank's loss was not finite: every rank then stops together."""
        return distributed.max_over_ranks(int(self.first))  # a sync: read once per epoch


def correct_count(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == targets).sum()


def top5_count(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Images whose label is among the 5 highest logits (ImageNet's second figure; all, under 6 classes)."""
    return (logits.topk(min(5, logits.shape[1]), dim=1).indices == targets[:, None]).any(dim=1).sum()
