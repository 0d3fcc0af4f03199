"""Per-epoch running sums kept on the training device.

Reading a GPU value forces a host-device synchronisation; summing on the device
and reading everything once per epoch keeps the training step free of them.
"""
import torch


class EpochSums:
    def __init__(self):
        self._sums = {}
        self._counts = {}

    def add(self, name: str, total: torch.Tensor, count: int) -> None:
        """Add a sum over `count` items (e.g. loss * batch size, number correct)."""
        if count == 0:
            return
        total = total.detach().float()
        self._sums[name] = self._sums[name] + total if name in self._sums else total
        self._counts[name] = self._counts.get(name, 0) + count

    def means(self) -> dict:
        if not self._sums:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n] for n in names]).tolist()  # the one sync
        return {n: v / self._counts[n] for n, v in zip(names, values)}


def correct_count(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == targets).sum()
