"""The UNIX step: uncertainty-aware mixup sampling (Xu, Liu, Loy, arXiv:2012.09413).

Read next to the paper's algorithm. For a batch of n images (n = B except the
last batch):

    1. score    uncertainty of every image under the student (no gradient)
    2. rank     most uncertain first
    3. curve    m_r = lambda * sigmoid(w * (r / B - (2b - 1) / (2B))), lambda ~ Beta(1, 1)
    4. mix      x'_r = (1 - m_r) * x[rank[r]] + m_r * x[partner[r]]
    5. select   keep x'[:k]; only these reach the teacher and the student's training pass

Counting (step 6) and distillation (steps 7-8) live in utils/training/steps.py.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.unix_settings import MIX_STRATEGIES, STRATEGIES


def uncertainty_scores(logits: torch.Tensor, strategy: int) -> torch.Tensor:
    """Step 1: one score per image; higher means more uncertain. The strategy's function is the one its line of
    STRATEGIES names (utils/unix_settings.py, without torch, so that the flag is checked before torch is imported)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy}")
    return globals()[STRATEGIES[strategy].scores](logits)


def random_scores(logits: torch.Tensor) -> torch.Tensor:
    """Strategy 0: a uniform draw per image (a random ranking)."""
    return torch.rand(logits.shape[0], device=logits.device)


def _log_probabilities(logits: torch.Tensor):
    """(log p, p) of the softmax, in float32 whatever the logits' precision."""
    log_p = F.log_softmax(logits.float(), dim=1)
    return log_p, log_p.exp()


def least_confidence_scores(logits: torch.Tensor) -> torch.Tensor:
    """1 - the largest probability."""
    _, p = _log_probabilities(logits)
    return 1 - p.max(dim=1).values


def margin_scores(logits: torch.Tensor) -> torch.Tensor:
    """Minus the gap between the two largest probabilities."""
    _, p = _log_probabilities(logits)
    top2 = p.topk(2, dim=1).values
    return -(top2[:, 0] - top2[:, 1])


def entropy_scores(logits: torch.Tensor) -> torch.Tensor:
    """The softmax's entropy (UNIXKD's default)."""
    log_p, p = _log_probabilities(logits)
    return -(p * log_p).sum(dim=1)


def mixing_weights(n: int, batch_size: int, b: int, w: float, lam, mix_strategy: int) -> torch.Tensor:
    """Step 3: the mixing weight m_r of each rank position r = 0..n-1.

    The curve is centred between positions b-1 and b, so the b most uncertain
    images stay (nearly) clean and the rest are mixed with weight ~lambda.
    """
    lam = torch.as_tensor(lam, dtype=torch.float32)
    r = torch.arange(n, dtype=torch.float32, device=lam.device)
    if mix_strategy == 0:
        return torch.zeros_like(r)
    if mix_strategy == 1:
        return lam * torch.ones_like(r)
    if mix_strategy == 2:
        return lam * torch.sigmoid(w * (r / batch_size - (2 * b - 1) / (2 * batch_size)))
    raise ValueError(f"mix_strategy must be one of {sorted(MIX_STRATEGIES)}, got {mix_strategy}")


def largest_mixing_weight(batch_size: int, b: int, w: float, mix_strategy: int) -> float:
    """The most any image can be mixed: the curve's maximum over the B positions at lambda = 1."""
    return mixing_weights(batch_size, batch_size, b, w, 1.0, mix_strategy).max().item()


def rank_by_uncertainty(scores: torch.Tensor) -> torch.Tensor:
    """Step 2: batch positions, most uncertain first (stable, so ties keep batch order)."""
    return torch.sort(scores, descending=True, stable=True).indices


def random_permutation(n: int, device) -> torch.Tensor:
    """A uniformly random order of 0..n-1: the sorting order of n uniform draws.

    A uniform draw and a sort: ops that a CUDA graph records and replays with fresh draws (utils/training/graphs.py).
    """
    return torch.rand(n, device=device).argsort()


@dataclass
class UnixBatch:
    """What the teacher and the student train on: the first k mixed images."""

    inputs: torch.Tensor     # x'[:k]
    targets_a: torch.Tensor  # y[rank][:k], weight 1 - m
    targets_b: torch.Tensor  # y[partner][:k], weight m
    mix: torch.Tensor        # m[:k]
    rank: torch.Tensor       # the whole ranking, for counting and statistics


def uncertainty_aware_mixup(x, y, scores, *, k: int, b: int, w: float,
                            batch_size: int, mix_strategy: int) -> UnixBatch:
    """Steps 2-5 for one batch. Random draws use torch's generator on x's device."""
    n = x.shape[0]
    rank = rank_by_uncertainty(scores)
    lam = torch.rand((), device=x.device)  # Beta(1, 1) is Uniform(0, 1); stays on device: no sync
    m = mixing_weights(n, batch_size, b, w, lam, mix_strategy)
    partner = random_permutation(n, x.device)
    keep = min(k, n)
    # Mixing only the kept positions gives x'[:k] exactly, without computing the rest.
    first, second, m_k = rank[:keep], partner[:keep], m[:keep]
    m_img = m_k.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    inputs = (1 - m_img) * x[first] + m_img * x[second]
    return UnixBatch(inputs, y[first], y[second], m_k, rank)
