"""Image files no decoder can read (empty, truncated, not an image): named once, skipped, counted per pass.

A bad file must not end a run mid-epoch: the loaders leave it out of its batch, this names it in a
warning the first time it is met, and each pass over a split ends with one line counting them (all
ranks' together, so under torchrun the count is the whole run's). A training batch whose every file is
unreadable takes a stand-in image instead (stand_in): under DDP every rank must take every step.
"""
import warnings

from utils.errors import UserError
from utils.process import distributed

NAMED_IN_SUMMARY = 3


class UnreadableImages:
    def __init__(self, split: str):
        self.split, self.named, self.this_pass = split, set(), []

    def skip(self, path: str, reason: str) -> None:
        if path not in self.named:
            self.named.add(path)
            warnings.warn(f"skipped {path}: no decoder can read it ({reason})", stacklevel=2)
        self.this_pass.append(path)

    def end_pass(self) -> int:
        """Count the pass's skipped files over all ranks (a collective under torchrun) and say so in one line."""
        skipped = sorted(path for part in distributed.gather_objects(self.this_pass) for path in part)
        self.this_pass = []
        if skipped:
            shown = ", ".join(skipped[:NAMED_IN_SUMMARY]) + (", ..." if len(skipped) > NAMED_IN_SUMMARY else "")
            print(f"{self.split}: {len(skipped)} unreadable image file(s) skipped in this pass: {shown}", flush=True)
        return len(skipped)


def stand_in(after: int, size: int, read):
    """read(index) of the first image after `after` (wrapping round the split's end) that reads (read gives None for
    an unreadable one): the one image of a training batch whose every file is unreadable.

    Under DDP each step averages every rank's gradients, so a rank cannot skip one: a rank without a batch would
    leave the others waiting, and one with fewer steps would end the run out of step. The stand-in is trained on
    twice in the epoch, as DistributedSampler's padding repeats images; the unreadable files are still counted.
    """
    for offset in range(1, size):
        found = read((after + offset) % size)
        if found is not None:
            return found
    raise UserError(f"no image of the split can be read (all {size} tried)")
