"""UNIX's own settings, which every distiller runs under, without torch: its uncertainty strategies and mixing
curves by number, the paper's two methods as student_v0.py's UNIX flags, and ImageNet's default k and b.

No torch here, so that student_v0.py checks its flags before torch is imported; utils/unix.py looks each
strategy's scoring function up by the name given here. Adding a strategy: its function in utils/unix.py and one
line in STRATEGIES (docs/layout.md).
"""
from typing import NamedTuple


class Strategy(NamedTuple):
    """One of UNIX's uncertainty measures (step 1 of utils/unix.py)."""

    name: str    # in --help and the docs
    scores: str  # its function in utils/unix.py: scores(logits) -> one score per image, higher is more uncertain


STRATEGIES = {0: Strategy("random", "random_scores"), 1: Strategy("least confidence", "least_confidence_scores"),
              2: Strategy("margin", "margin_scores"), 3: Strategy("entropy", "entropy_scores")}
MIX_STRATEGIES = {0: "none", 1: "mixup", 2: "adaptive"}

# The paper's two methods as student_v0.py's UNIX flags (the run list and the results table name its runs by them).
KD_FLAGS = {"strategy": 0, "k": 64, "b": 64, "w": 1000}    # nothing mixed, the teacher sees all 64 images
UNIXKD_FLAGS = {"strategy": 3, "k": 48, "b": 32, "w": 10}  # entropy ranking, the teacher sees 48 of 64


def strategies_text() -> str:
    """'0 random, 1 least confidence, ...': --strategy's choices as its help and the docs list them."""
    return ", ".join(f"{number} {strategy.name}" for number, strategy in STRATEGIES.items())


def default_unix_sizes(local_batch: int) -> tuple:
    """(k, b) on ImageNet, where they follow each process's batch: the paper's CIFAR proportions, 48 and 32 of 64."""
    return 3 * local_batch // 4, local_batch // 2
